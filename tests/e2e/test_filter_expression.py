"""The filter `expression` end to end: the daemon's hot reload on the real API server, and the
`convert` command's exit code and `--explain` lines, as real processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from tests.harness import reports as fx
from tests.harness.controlplane import cluster
from tests.harness.daemons import StartDaemon
from tests.harness.paths import REPO_ROOT, SHARED_FIXTURES
from tests.harness.payloads import unique_alert
from tests.harness.polling import wait_for

FALCO = SHARED_FIXTURES / "falco"


def set_filter(control_plane: cluster.Cluster, namespace: str, document: object | str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "zen-watcher-filter", "namespace": namespace},
        "data": {"filter.json": text},
    }
    fx.apply(control_plane, manifest)


class TestDaemon:
    def test_expression_hot_reload_drops_and_counts(
        self, start_daemon: StartDaemon, control_plane: cluster.Cluster, namespace: str
    ) -> None:
        """1. An expression in the ConfigMap drops a medium Falco alert: the answer counts it
        filtered, the metric counts it under expression_filtered, the debug log says why.
        2. An expression that does not parse: the last good one stays, the validity metric
        is 0, and the log names the error's position.
        3. A corrected expression lets the alert through."""
        set_filter(control_plane, namespace, {"expression": "spec.severity >= 'high'"})
        daemon = start_daemon(LOG_LEVEL="debug")
        body = orjson.dumps(unique_alert(1, namespace))  # priority Warning -> medium
        wait_for(lambda: daemon.post("/falco/webhook", body)[2].get("filtered") == 1)
        filtered = {"bucket": "filtered", "reason": "expression_filtered"}
        assert 1 <= daemon.metric_sum("zen_watcher_events_total", source="falco", **filtered)
        dropped = [e for e in daemon.log_events() if e.get("event") == "filter_dropped"]
        assert dropped[0]["reason"] == "expression_filtered"
        assert dropped[0]["why"] == "clause spec.severity >= 'high' with spec.severity = \"medium\""

        set_filter(control_plane, namespace, {"expression": "spec.severity >= 'high' AND ("})
        wait_for(lambda: daemon.metric_sum("zen_watcher_filter_config_valid") == 0)
        invalid = [
            event
            for event in daemon.log_events()
            if event.get("event") == "filter_config_invalid_kept_last_good"
        ]
        assert invalid[-1]["position"] == 30
        assert invalid[-1]["error"] == (
            "expression: at character 30: expected a field, a string, a number or a list, "
            "found the end of the expression"
        )
        assert 1 == daemon.post("/falco/webhook", orjson.dumps(unique_alert(2, namespace)))[2].get(
            "filtered"
        )

        set_filter(control_plane, namespace, {"expression": "spec.severity >= 'medium'"})
        wait_for(
            lambda: (
                daemon.post("/falco/webhook", orjson.dumps(unique_alert(3, namespace)))[2].get(
                    "accepted"
                )
                == 1
            )
        )
        assert 1 == daemon.metric_sum("zen_watcher_filter_config_valid")


def convert(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zenwatcher", "convert", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )


class TestConvert:
    def test_expression_that_does_not_parse_exits_2(self, tmp_path: Path) -> None:
        """`convert --filter` with a bad expression: exit 2, the reload's message, nothing out."""
        path = tmp_path / "filter.json"
        path.write_text(json.dumps({"expression": "spec.severity >= 'hgh'"}))
        result = convert(
            "--source",
            "falco",
            "--filter",
            path,
            FALCO / "terminal-shell-in-container-critical.json",
        )
        assert 2 == result.returncode
        assert "" == result.stdout
        assert result.stderr == (
            f"zen-watcher convert: {path}: expression: at character 18: 'hgh' is not a "
            "severity (severities: critical, high, medium, low, info)\n"
        )

    def test_explain_names_reason_value_and_clause(self, tmp_path: Path) -> None:
        """The upstream Falco samples through an expression and a per-source rule: each dropped
        finding gets one stderr line with its name, reason label and the value (and clause)."""
        path = tmp_path / "filter.json"
        path.write_text(
            json.dumps(
                {
                    "expression": (
                        "spec.severity >= 'low' AND spec.resource.namespace NOT IN "
                        "['openfaas-fn'] AND spec.resource.kind != 'ServiceAccount'"
                    ),
                    "sources": {"falco": {"minSeverity": "MEDIUM"}},
                }
            )
        )
        files = sorted(FALCO.glob("*.json"))
        result = convert("--source", "falco", "--filter", path, "--explain", *files)
        assert 0 == result.returncode
        kept = [json.loads(line)["spec"]["severity"] for line in result.stdout.splitlines()]
        assert sorted(kept) == ["critical", "high", "medium"]
        lines = [line.split(": ", 2) for line in result.stderr.splitlines()]
        explained = sorted(line[2] for line in lines if " filtered (" in line[2])
        assert explained == [
            "falco-176b505a54eb9680 filtered (expression_filtered): clause "
            "spec.severity >= 'low' with spec.severity = \"info\"",
            "falco-5f168cdc66ac612b filtered (min_severity): severity low below minSeverity medium",
            "falco-a93a0d3aa14cf6ea filtered (expression_filtered): clause "
            "spec.resource.namespace NOT IN ['openfaas-fn'] with "
            'spec.resource.namespace = "openfaas-fn"',
        ]

    def test_readme_example_is_what_convert_prints(self, tmp_path: Path) -> None:
        """README's "Why was this dropped?" filter, run as its command line shows, prints
        exactly the lines README shows, and the three Observations it says."""
        readme = (REPO_ROOT / "README.md").read_text()
        section = readme[readme.index("**Why was this dropped?**") :]
        document = re.search(r"```json\n(.*?)```", section, re.DOTALL)
        console = re.search(r"```console\n\$ (.*?)\n(.*?)```", section, re.DOTALL)
        assert document is not None
        assert console is not None
        (tmp_path / "filter.json").write_text(document.group(1))
        command = console.group(1).split(" > ")[0].split()
        assert command[:2] == ["zen-watcher", "convert"]
        args = [str(tmp_path / arg) if arg == "filter.json" else arg for arg in command[2:-1]]
        files = sorted(path.relative_to(SHARED_FIXTURES) for path in FALCO.glob("*.json"))
        assert command[-1] == "falco/*.json"
        result = subprocess.run(
            [sys.executable, "-m", "zenwatcher", "convert", *args, *map(str, files)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=SHARED_FIXTURES,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert 0 == result.returncode
        assert console.group(2) == result.stderr
        assert 3 == len(result.stdout.splitlines())
