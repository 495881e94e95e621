"""What the writer tells about the findings it writes, on the real API server: the phase label
moves with the phase, the time to resolve is observed once per resolution, reopens are counted,
and new findings are counted by rule under a series cap."""

from __future__ import annotations

import dataclasses
import re
import shlex
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from tests.harness.controlplane import cluster
from tests.harness.findings import falco_finding, report_finding
from tests.harness.paths import REPO_ROOT
from tests.harness.writers import make_writer
from zenwatcher.finding import Severity
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.metrics.findings import OVERFLOW, FindingsMode
from zenwatcher.observation import LABEL_PHASE
from zenwatcher.pipeline.jobs import CreateJob, OpenJob, ResolveJob

pytestmark = pytest.mark.apiserver


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_resolve_observes_time_to_resolve_once_and_moves_the_phase_label(
    watcher_client: KubeClient, admin_client: KubeClient, namespace: str
) -> None:
    """Open → Resolved (twice: one write) → reopened → Resolved: two observations of resolvedAt
    minus detectedAt, one reopen, and the phase label follows each transition."""
    metrics = Metrics(CollectorRegistry())
    writer = make_writer(watcher_client, metrics, default_namespace=namespace)
    found = report_finding(namespace)
    seen = datetime.now(UTC).replace(microsecond=0)
    histogram = "zen_watcher_finding_time_to_resolve_seconds"
    by = {"source": "kyverno", "severity": "high"}

    async def phase_label() -> str:
        stored = await observations.get_observation(admin_client, namespace, found.name)
        return str(stored["metadata"]["labels"][LABEL_PHASE])

    await writer.write(OpenJob(finding=found, namespace=namespace, seen_at=seen))
    assert "open" == await phase_label()
    resolved_at = datetime(2026, 1, 3, 12, tzinfo=UTC)
    resolve = ResolveJob(
        name=found.name, namespace=namespace, source="kyverno", resolved_at=resolved_at
    )
    await writer.write(resolve)
    await writer.write(resolve)  # already Resolved: no write, no second observation
    assert "resolved" == await phase_label()
    assert 1 == sample(metrics, f"{histogram}_count", **by)
    assert 2.5 * 86400 == sample(metrics, f"{histogram}_sum", **by)
    assert 1 == sample(metrics, f"{histogram}_bucket", le="259200.0", **by)  # ≤ 3 days
    assert 0 == sample(metrics, f"{histogram}_bucket", le="172800.0", **by)  # not ≤ 2 days

    await writer.write(OpenJob(finding=found, namespace=namespace, seen_at=seen))
    assert "open" == await phase_label()
    assert 1 == sample(metrics, "zen_watcher_findings_reopened_total", source="kyverno")
    await writer.write(
        ResolveJob(
            name=found.name,
            namespace=namespace,
            source="kyverno",
            resolved_at=resolved_at + timedelta(days=1),
        )
    )
    assert "resolved" == await phase_label()
    assert 2 == sample(metrics, f"{histogram}_count", **by)
    assert 1 == sample(metrics, "zen_watcher_findings_reopened_total", source="kyverno")
    # One new finding, counted once under its policy (simple mode: no rule, no namespace).
    detected = "zen_watcher_findings_detected_total"
    assert 1 == sample(metrics, detected, source="kyverno", severity="high", rule="require-labels")


async def test_resolves_by_two_writers_observe_once(
    watcher_client: KubeClient, namespace: str
) -> None:
    """Two replicas' writers resolve the same finding: one write changes the phase, so the
    time to resolve is observed once across both."""
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    writers = [make_writer(watcher_client, m, default_namespace=namespace) for m in (first, second)]
    found = report_finding(namespace, policy="disallow-latest")
    seen = datetime.now(UTC)
    await writers[0].write(OpenJob(finding=found, namespace=namespace, seen_at=seen))
    job = ResolveJob(name=found.name, namespace=namespace, source="kyverno", resolved_at=seen)
    for writer in writers:
        await writer.write(job)
    counts = [
        sample(
            m,
            "zen_watcher_finding_time_to_resolve_seconds_count",
            source="kyverno",
            severity="high",
        )
        for m in (first, second)
    ]
    assert [1, 0] == counts


async def test_event_findings_are_labelled_open_and_counted_by_rule_with_a_cap(
    watcher_client: KubeClient, admin_client: KubeClient, namespace: str
) -> None:
    """Detailed mode, cap 3: three rules get series, the next two rules go to the overflow
    series; a repeat (409) is not a new finding."""
    metrics = Metrics(
        CollectorRegistry(), findings_mode=FindingsMode.DETAILED, findings_max_series=3
    )
    writer = make_writer(watcher_client, metrics, default_namespace=namespace)
    seen = datetime.now(UTC)
    for index in range(5):
        found = falco_finding(namespace, index, rule=f"rule-{index}")
        await writer.write(CreateJob(finding=found, namespace=namespace, seen_at=seen))
    repeat = falco_finding(namespace, 0, rule="rule-0")
    await writer.write(CreateJob(finding=repeat, namespace=namespace, seen_at=seen))

    stored = await observations.get_observation(admin_client, namespace, repeat.name)
    assert "open" == stored["metadata"]["labels"][LABEL_PHASE]
    detected = "zen_watcher_findings_detected_total"
    by = {"source": "falco", "severity": "critical", "namespace": namespace}
    assert [1, 1, 1] == [sample(metrics, detected, rule=f"rule-{i}", **by) for i in range(3)]
    assert 0 == sample(metrics, detected, rule="rule-3", **by)
    overflow = {"source": "falco", "severity": "critical", "namespace": OVERFLOW}
    assert 2 == sample(metrics, detected, rule=OVERFLOW, **overflow)
    assert 4 == metrics.findings_detected.series()


def readme_commands() -> list[str]:
    """The `kubectl get obs` lines of README's "Looking at findings" block."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("## Looking at findings", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


async def test_readme_selectors_answer_the_questions(
    watcher_client: KubeClient, control_plane: cluster.Cluster, namespace: str
) -> None:
    """Each README selector command, run as the restricted user, lists exactly the findings it
    says: critical, open critical/high, open in one namespace, one source, resolved, one."""
    writer = make_writer(watcher_client, Metrics(CollectorRegistry()), default_namespace=namespace)
    now = datetime.now(UTC)
    shell = falco_finding(namespace, 1)
    open_policy = report_finding(namespace, policy="p-open")
    fixed = report_finding(namespace, policy="p-fixed")
    low = dataclasses.replace(report_finding(namespace, policy="p-low"), severity=Severity.LOW)
    await writer.write(CreateJob(finding=shell, namespace=namespace, seen_at=now))
    for found in (open_policy, fixed, low):
        await writer.write(OpenJob(finding=found, namespace=namespace, seen_at=now))
    await writer.write(
        ResolveJob(name=fixed.name, namespace=namespace, source="kyverno", resolved_at=now)
    )
    expected = [
        {shell.name},
        {shell.name, open_policy.name},
        {shell.name, open_policy.name, low.name},
        {shell.name},
        {fixed.name},
        {open_policy.name},
    ]
    commands = readme_commands()
    assert len(expected) == len(commands), commands
    for command, names in zip(commands, expected, strict=True):
        text = command.replace(" shop ", f" {namespace} ")
        text = text.replace("kyverno-0123456789abcdef", open_policy.name)
        args = shlex.split(text)
        assert ["kubectl", "get", "obs"] == args[:3], command
        result = control_plane.kubectl(*args[1:], user="zen-watcher")
        ours = set(re.findall(r"\b(?:falco|kyverno)-[0-9a-f]{16}\b", result.stdout))
        listed = {
            name for name in ours if name in {shell.name, open_policy.name, fixed.name, low.name}
        }
        assert names == listed, f"{command}\n{result.stdout}"
