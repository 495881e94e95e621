"""Unit tests for zenwatcher.mapping.falco: Falco alerts to findings."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.harness.paths import SHARED_FIXTURES
from zenwatcher.finding import Category, ResourceRef, Severity
from zenwatcher.mapping import falco, rejection

FALCO_FIXTURES = SHARED_FIXTURES / "falco"

# file -> (severity, namespace, kind, name) of the finding, or the Ignored reason.
EXPECTED: dict[str, tuple[Severity, str, str, str] | str] = {
    "contact-k8s-api-server-notice.json": (
        Severity.LOW,
        "openfaas-fn",
        "Pod",
        "falco-pod-delete-7dc9f5fbb8-gbfk7",
    ),
    "internal-metrics-snapshot.json": "internal",
    "k8saudit-attach-exec-pod-notice-ovh.json": (
        Severity.LOW,
        "hello-app",
        "Pod",
        "nginx-676b6c5bbc-4xc6t",
    ),
    "k8saudit-disallowed-user-warning.json": (
        Severity.MEDIUM,
        "",
        "VolumeAttachment",
        "csi-6afb06dce281b86b7bab718b5d966dc261b2b1554941ae449519a128cb2e3fb3",
    ),
    "k8saudit-serviceaccount-created-informational.json": (
        Severity.INFO,
        "default",
        "ServiceAccount",
        "default",
    ),
    "terminal-shell-in-container-critical.json": (Severity.CRITICAL, "default", "Pod", "kubecon"),
    "write-below-binary-dir-error.json": (Severity.HIGH, "", "", ""),
}


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FALCO_FIXTURES / name).read_text())
    return loaded


def shell_alert(**fields: Any) -> dict[str, Any]:
    """A syscall alert like Falco's "Terminal shell in container", with output_fields overridden."""
    alert = load("terminal-shell-in-container-critical.json")
    alert["output_fields"].update(fields)
    return alert


def audit_alert(**fields: Any) -> dict[str, Any]:
    """A k8s_audit-sourced alert, with output_fields overridden."""
    alert = load("k8saudit-attach-exec-pod-notice-ovh.json")
    alert["output_fields"].update(fields)
    return alert


class TestFixtures:
    """Every shared Falco fixture maps to its expected outcome."""

    def test_every_fixture_has_an_expectation(self) -> None:
        """A new fixture file cannot go untested."""
        assert set(EXPECTED) == {path.name for path in FALCO_FIXTURES.glob("*.json")}

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_fixture_outcome(self, name: str) -> None:
        """The fixture gives its expected severity and resource, or is ignored as internal."""
        expected = EXPECTED[name]
        if isinstance(expected, str):
            with pytest.raises(rejection.Ignored) as caught:
                falco.map_falco_alert(load(name))
            assert expected == caught.value.reason
            return
        finding = falco.map_falco_alert(load(name))
        severity, namespace, kind, name_ = expected
        assert "falco" == finding.source
        assert "runtime_detection" == finding.event_type
        assert Category.SECURITY == finding.category
        assert severity == finding.severity
        assert namespace == finding.namespace
        assert kind == (finding.resource.kind if finding.resource else "")
        assert name_ == (finding.resource.name if finding.resource else "")
        assert finding.name.startswith("falco-")

    @pytest.mark.parametrize(
        "name", sorted(n for n, e in EXPECTED.items() if not isinstance(e, str))
    )
    def test_fixture_title_message_and_time(self, name: str) -> None:
        """Title is the rule, message the output, detected_at the alert's own time."""
        alert = load(name)
        finding = falco.map_falco_alert(alert)
        assert alert["rule"] == finding.title
        assert alert["output"] == finding.message
        assert alert["rule"] == finding.details["rule"]
        assert alert["time"] == finding.details["time"]
        assert finding.detected_at is not None

    def test_terminal_shell_details(self) -> None:
        """Details carry the tool's priority word, tags, host, source and output fields."""
        finding = falco.map_falco_alert(load("terminal-shell-in-container-critical.json"))
        assert "Critical" == finding.details["priority"]
        assert ["container", "mitre_execution", "shell"] == finding.details["tags"]
        assert "falco-xczjd" == finding.details["hostname"]
        assert "syscall" == finding.details["falcoSource"]
        assert "sh" == finding.details["outputFields"]["proc.name"]
        assert datetime(2023, 5, 25, 13, 44, 5, 478445, tzinfo=UTC) == finding.detected_at


class TestSplitFalcoBody:
    """A request body is one alert or an array of alerts."""

    def test_object_is_one_alert(self) -> None:
        """A single object is a list of one."""
        alert = load("write-below-binary-dir-error.json")
        assert [alert] == falco.split_falco_body(alert)

    def test_array_is_its_alerts(self) -> None:
        """An array is its elements, non-objects included (each is rejected on its own)."""
        assert [{"rule": "a"}, 3] == falco.split_falco_body([{"rule": "a"}, 3])

    def test_empty_array(self) -> None:
        """An empty array holds no alerts."""
        assert [] == falco.split_falco_body([])

    @pytest.mark.parametrize("payload", ["text", 3, None, True])
    def test_other_shapes_rejected(self, payload: object) -> None:
        """Anything but an object or array is an invalid shape."""
        with pytest.raises(rejection.Rejected) as caught:
            falco.split_falco_body(payload)
        assert "invalid_shape" == caught.value.reason


class TestRejections:
    """Malformed alerts are rejected with a reason."""

    @pytest.mark.parametrize("alert", [[], "rule", 1, None])
    def test_not_an_object(self, alert: object) -> None:
        """A non-object alert is not_an_object."""
        with pytest.raises(rejection.Rejected) as caught:
            falco.map_falco_alert(alert)
        assert "not_an_object" == caught.value.reason

    @pytest.mark.parametrize("rule", [None, "", "   "])
    def test_missing_rule(self, rule: object) -> None:
        """An alert without a usable rule is missing_rule."""
        alert = shell_alert()
        alert["rule"] = rule
        with pytest.raises(rejection.Rejected) as caught:
            falco.map_falco_alert(alert)
        assert "missing_rule" == caught.value.reason

    def test_absent_rule(self) -> None:
        """An alert with no rule key at all is missing_rule."""
        alert = shell_alert()
        del alert["rule"]
        with pytest.raises(rejection.Rejected) as caught:
            falco.map_falco_alert(alert)
        assert "missing_rule" == caught.value.reason

    @pytest.mark.parametrize(
        ("key", "value"),
        [("rule", 7), ("output_fields", "x"), ("tags", "shell"), ("source", 1)],
    )
    def test_wrong_types(self, key: str, value: object) -> None:
        """A field of the wrong type is invalid_field and the message names it."""
        alert = shell_alert()
        alert[key] = value
        with pytest.raises(rejection.Rejected) as caught:
            falco.map_falco_alert(alert)
        assert "invalid_field" == caught.value.reason
        assert key in str(caught.value)

    @pytest.mark.parametrize("time", [None, "", "yesterday", [1]])
    def test_bad_time_is_not_a_rejection(self, time: object) -> None:
        """An unusable time leaves detected_at None."""
        alert = shell_alert()
        alert["time"] = time
        assert falco.map_falco_alert(alert).detected_at is None


class TestInternal:
    """Falco's own internal events are ignored, not findings."""

    def test_internal_source(self) -> None:
        """source internal is ignored whatever the rule."""
        alert = shell_alert()
        alert["source"] = "internal"
        with pytest.raises(rejection.Ignored) as caught:
            falco.map_falco_alert(alert)
        assert "internal" == caught.value.reason

    def test_internal_rule_prefix(self) -> None:
        """A rule starting "Falco internal:" is ignored even without a source."""
        alert = load("write-below-binary-dir-error.json")
        alert["rule"] = "Falco internal: syscall event drop"
        with pytest.raises(rejection.Ignored) as caught:
            falco.map_falco_alert(alert)
        assert "internal" == caught.value.reason


class TestSeverity:
    """Falco priorities map to severities, case-insensitively."""

    @pytest.mark.parametrize(
        ("priority", "expected"),
        [
            ("Emergency", Severity.CRITICAL),
            ("ALERT", Severity.CRITICAL),
            ("Critical", Severity.CRITICAL),
            ("Error", Severity.HIGH),
            ("warning", Severity.MEDIUM),
            ("Notice", Severity.LOW),
            ("Informational", Severity.INFO),
            ("Debug", Severity.INFO),
            ("bogus", Severity.MEDIUM),
            (None, Severity.MEDIUM),
            (3, Severity.MEDIUM),
        ],
    )
    def test_priority(self, priority: object, expected: Severity) -> None:
        """Each priority word gives its severity; missing or unknown gives medium."""
        alert = shell_alert()
        alert["priority"] = priority
        assert expected == falco.map_falco_alert(alert).severity


class TestResource:
    """The affected object comes from k8s.* or ka.target.* output fields."""

    def test_pod_without_namespace_field(self) -> None:
        """A pod with no namespace is a Pod ref without namespace."""
        alert = shell_alert(**{"k8s.ns.name": None})
        assert ResourceRef(api_version="v1", kind="Pod", name="kubecon") == (
            falco.map_falco_alert(alert).resource
        )

    def test_not_available_markers_are_absent(self) -> None:
        """Falco's "<NA>" for a host process means no namespace and no pod."""
        alert = shell_alert(**{"k8s.ns.name": "<NA>", "k8s.pod.name": "<NA>"})
        assert falco.map_falco_alert(alert).resource is None

    def test_namespace_without_pod(self) -> None:
        """A namespace alone still places the finding in that namespace."""
        alert = shell_alert(**{"k8s.pod.name": "<NA>"})
        finding = falco.map_falco_alert(alert)
        assert "default" == finding.namespace
        assert ResourceRef(namespace="default") == finding.resource

    def test_audit_target_keeps_namespace(self) -> None:
        """A k8s_audit alert's target becomes the resource, namespace kept."""
        alert = audit_alert(**{"ka.target.resource": "secrets", "ka.target.name": "db"})
        assert ResourceRef(api_version="v1", kind="Secret", name="db", namespace="hello-app") == (
            falco.map_falco_alert(alert).resource
        )

    def test_audit_unknown_plural_keeps_name(self) -> None:
        """An unknown plural gives no kind but keeps the name and namespace."""
        alert = audit_alert(**{"ka.target.resource": "widgets"})
        resource = falco.map_falco_alert(alert).resource
        assert resource is not None
        assert ("", "nginx-676b6c5bbc-4xc6t", "hello-app") == (
            resource.kind,
            resource.name,
            resource.namespace,
        )

    def test_audit_namespace_object_is_cluster_scoped(self) -> None:
        """A Namespace target is cluster-scoped, with its name as the name."""
        alert = audit_alert(
            **{
                "ka.target.resource": "namespaces",
                "ka.target.name": "foo",
                "ka.target.namespace": "foo",
            }
        )
        assert ResourceRef(api_version="v1", kind="Namespace", name="foo") == (
            falco.map_falco_alert(alert).resource
        )

    def test_no_kubernetes_fields(self) -> None:
        """A host alert has no resource (the writer uses the watcher's namespace)."""
        finding = falco.map_falco_alert(load("write-below-binary-dir-error.json"))
        assert finding.resource is None
        assert "" == finding.namespace


class TestIdentity:
    """The Observation name follows what and where, not when or which process instance."""

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("time", "2030-01-01T00:00:00.000000000Z"),
            ("output", "00:00:00.000: something else entirely"),
            ("uuid", "5a8f7ad5-0d62-4c4e-9d1f-3b3f0c6f9f10"),
            ("priority", "Warning"),
            ("tags", ["other"]),
        ],
    )
    def test_volatile_alert_keys(self, key: str, value: object) -> None:
        """Time, output text, uuid, priority and tags do not change the name."""
        alert = shell_alert()
        changed = copy.deepcopy(alert)
        changed[key] = value
        assert falco.map_falco_alert(alert).name == falco.map_falco_alert(changed).name

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("evt.time", 1),
            ("proc.pid", 4242),
            ("proc.cmdline", "sh -c 'echo other args'"),
            ("proc.tty", 1),
            ("fd.sport", 51515),
        ],
    )
    def test_volatile_output_fields(self, field: str, value: object) -> None:
        """Event time, pid, command line, tty and ports do not change the name."""
        base = falco.map_falco_alert(shell_alert())
        assert base.name == falco.map_falco_alert(shell_alert(**{field: value})).name

    def test_client_port_in_fd_name(self) -> None:
        """Socket ports in fd.name (ephemeral client ports) do not change the name."""
        first = load("contact-k8s-api-server-notice.json")
        second = copy.deepcopy(first)
        second["output_fields"]["fd.name"] = "172.17.0.9:50001->10.96.0.1:443"
        assert falco.map_falco_alert(first).name == falco.map_falco_alert(second).name

    def test_falcosidekick_extra_keys(self) -> None:
        """falcosidekick's extra keys (uuid, hostname) leave a host-less pod alert's name alone."""
        alert = shell_alert()
        forwarded = {**alert, "uuid": "x", "hostname": "sidekick-0"}
        assert falco.map_falco_alert(alert).name == falco.map_falco_alert(forwarded).name

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("k8s.ns.name", "other"),
            ("k8s.pod.name", "other"),
            ("container.id", "0123456789ab"),
            ("container.image.repository", "docker.io/library/busybox"),
            ("proc.name", "bash"),
            ("proc.exepath", "/bin/bash"),
            ("proc.pname", "containerd-shim"),
            ("user.name", "nobody"),
            ("fd.name", "/etc/shadow"),
        ],
    )
    def test_actor_fields_change_name(self, field: str, value: object) -> None:
        """Where it fired and who did it give a different finding."""
        base = falco.map_falco_alert(shell_alert())
        assert base.name != falco.map_falco_alert(shell_alert(**{field: value})).name

    def test_rule_changes_name(self) -> None:
        """Another rule on the same actor is another finding."""
        alert = shell_alert()
        other = {**alert, "rule": "Other rule"}
        assert falco.map_falco_alert(alert).name != falco.map_falco_alert(other).name

    def test_host_tells_host_alerts_apart(self) -> None:
        """Without a pod, the same rule on two hosts is two findings."""
        first = load("write-below-binary-dir-error.json")
        second = {**first, "hostname": "node-2"}
        assert falco.map_falco_alert(first).name != falco.map_falco_alert(second).name

    def test_collector_host_does_not_matter_for_audit_alerts(self) -> None:
        """A k8s_audit alert is the same finding whichever Falco pod reported it."""
        first = audit_alert()
        second = {**first, "hostname": "another-falco-pod"}
        assert falco.map_falco_alert(first).name == falco.map_falco_alert(second).name

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("ka.user.name", "mallory"),
            ("ka.target.name", "other-pod"),
            ("ka.target.namespace", "other"),
            ("ka.target.subresource", "attach"),
        ],
    )
    def test_audit_fields_change_name(self, field: str, value: object) -> None:
        """A k8s_audit alert's user and target identify it."""
        base = falco.map_falco_alert(audit_alert())
        assert base.name != falco.map_falco_alert(audit_alert(**{field: value})).name

    def test_identity_is_strings_in_fixed_order(self) -> None:
        """The identity is a tuple of strings starting with rule, namespace, pod."""
        identity = falco.map_falco_alert(shell_alert()).identity
        assert ("Terminal shell in container", "default", "kubecon") == identity[:3]
        assert all(isinstance(part, str) for part in identity)
