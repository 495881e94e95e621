"""The `zen-watcher` command as users run it: a real process, real exit codes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.harness.controlplane.controlplane import free_port
from tests.harness.daemon_process import TOKEN
from tests.harness.paths import SHARED_FIXTURES
from zenwatcher import __version__


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A webhook token unless a test overrides it: `run` refuses to serve without a credential.
    return subprocess.run(
        [sys.executable, "-m", "zenwatcher", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "WEBHOOK_AUTH_TOKEN": TOKEN, **(env or {})},
        timeout=60,
        check=False,
    )


class TestCommandLine:
    def test_version(self) -> None:
        """--version prints the package version."""
        result = _run("--version")
        assert 0 == result.returncode
        assert f"zen-watcher {__version__}" == result.stdout.strip()

    def test_help_lists_commands(self) -> None:
        """--help names the run and convert commands."""
        result = _run("--help")
        assert 0 == result.returncode
        assert "run" in result.stdout
        assert "convert" in result.stdout

    def test_bad_setting_exits_2_with_one_line(self) -> None:
        """`run` with DEDUP_WINDOW_SECONDS=abc: exit 2, one line naming variable, value, rule."""
        result = _run("run", env={"DEDUP_WINDOW_SECONDS": "abc"})
        assert 2 == result.returncode
        lines = result.stderr.strip().splitlines()
        assert 1 == len(lines)
        assert lines[0].startswith(
            "zen-watcher: invalid DEDUP_WINDOW_SECONDS='abc': must be a duration"
        )

    def test_unknown_log_level(self) -> None:
        """An unknown LOG_LEVEL is refused the same way."""
        result = _run("run", env={"LOG_LEVEL": "loud"})
        assert 2 == result.returncode
        assert "LOG_LEVEL='loud'" in result.stderr

    def test_unloadable_tls_files_exit_2_naming_the_variable(self, tmp_path: Path) -> None:
        """A certificate file that does not exist: exit 2, the variable and path named, no
        traceback."""
        missing = str(tmp_path / "missing.crt")
        result = _run(
            "run",
            env={"WEBHOOK_TLS_CERT_FILE": missing, "WEBHOOK_TLS_KEY_FILE": missing},
        )
        assert 2 == result.returncode
        output = result.stdout + result.stderr
        assert "webhook_tls_invalid" in output
        assert f"WEBHOOK_TLS_CERT_FILE={missing!r}" in output
        assert "Traceback" not in output

    def test_a_taken_port_exits_2_naming_the_variable(self, tmp_path: Path) -> None:
        """WATCHER_PORT already bound by another process: exit 2 with the variable named."""
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(_UNREACHABLE_KUBECONFIG)
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))  # noqa: S104 - where the daemon binds
            taken.listen()
            port = taken.getsockname()[1]
            result = _run(
                "run",
                env={
                    "KUBECONFIG": str(kubeconfig),
                    "WATCHER_PORT": str(port),
                    "METRICS_PORT": str(free_port()),
                },
            )
        assert 2 == result.returncode, result.stdout + result.stderr
        output = result.stdout + result.stderr
        assert "listen_failed" in output
        assert "WATCHER_PORT" in output
        assert "Traceback" not in output


class TestAuthenticationRequired:
    @pytest.mark.parametrize("token", ["", "   "])
    def test_no_credential_exits_2_naming_the_variables(self, tmp_path: Path, token: str) -> None:
        """Neither a token nor a client CA: `run` exits 2 before listening, with one line that
        names every way out; nothing answers on the webhook port."""
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(_UNREACHABLE_KUBECONFIG)
        port = free_port()
        result = _run(
            "run",
            env={
                "KUBECONFIG": str(kubeconfig),
                "WATCHER_PORT": str(port),
                "METRICS_PORT": str(free_port()),
                "WEBHOOK_AUTH_TOKEN": token,
            },
        )
        assert 2 == result.returncode, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert 1 == len(lines), result.stderr
        assert lines[0].startswith("zen-watcher: invalid WEBHOOK_AUTH_TOKEN=")
        for variable in (
            "WEBHOOK_TLS_CLIENT_CA_FILE",
            "WEBHOOK_TLS_CERT_FILE",
            "WEBHOOK_ALLOW_UNAUTHENTICATED=true",
        ):
            assert variable in lines[0]
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass

    def test_explicit_false_is_still_refused(self) -> None:
        """WEBHOOK_ALLOW_UNAUTHENTICATED=false is the default, not an opt-in."""
        result = _run(
            "run", env={"WEBHOOK_AUTH_TOKEN": "", "WEBHOOK_ALLOW_UNAUTHENTICATED": "false"}
        )
        assert 2 == result.returncode
        assert "invalid WEBHOOK_AUTH_TOKEN=''" in result.stderr

    def test_convert_needs_no_credential(self) -> None:
        """`convert` serves nothing, so it runs without a token."""
        path = SHARED_FIXTURES / "falco/terminal-shell-in-container-critical.json"
        result = _run("convert", "--source", "falco", str(path), env={"WEBHOOK_AUTH_TOKEN": ""})
        assert 0 == result.returncode, result.stderr


# Loaded, never contacted: the daemon fails before its first API call.
_UNREACHABLE_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


class TestConvert:
    def test_falco_fixture(self) -> None:
        """A Falco alert file becomes one Observation JSON line with its rule and namespace."""
        path = SHARED_FIXTURES / "falco/terminal-shell-in-container-critical.json"
        result = _run("convert", "--source", "falco", str(path))
        assert 0 == result.returncode, result.stderr
        lines = result.stdout.splitlines()
        assert 1 == len(lines)
        observation = orjson.loads(lines[0])
        assert "Observation" == observation["kind"]
        assert "critical" == observation["spec"]["severity"]
        assert "Terminal shell in container" == observation["spec"]["details"]["rule"]
        assert "default" == observation["metadata"]["namespace"]
        assert 1 == observation["status"]["count"]

    def test_repeats_are_counted(self, tmp_path: Path) -> None:
        """The same alert three times (JSON lines) is one Observation with count 3."""
        alert = (SHARED_FIXTURES / "falco/terminal-shell-in-container-critical.json").read_bytes()
        lines = b"\n".join([orjson.dumps(orjson.loads(alert))] * 3)
        path = tmp_path / "alerts.jsonl"
        path.write_bytes(lines)
        result = _run("convert", "--source", "falco", str(path))
        assert 0 == result.returncode, result.stderr
        assert [3] == [orjson.loads(line)["status"]["count"] for line in result.stdout.splitlines()]

    def test_unreadable_file_exits_2(self, tmp_path: Path) -> None:
        """A missing file: exit 2 and a message naming it."""
        missing = tmp_path / "nope.json"
        result = _run("convert", "--source", "audit", str(missing))
        assert 2 == result.returncode
        assert str(missing) in result.stderr

    def test_deeply_nested_yaml_exits_2(self, tmp_path: Path) -> None:
        """10,000 nested YAML lists: exit 2 naming the file, no traceback."""
        nested = tmp_path / "nested.yaml"
        nested.write_text("[" * 10_000 + "]" * 10_000)
        result = _run("convert", "--source", "kyverno", str(nested))
        assert 2 == result.returncode
        assert f"{nested}: YAML nested too deeply to read" in result.stderr
        assert "Traceback" not in result.stderr

    def test_unparseable_file_exits_2(self, tmp_path: Path) -> None:
        """Text that is not JSON: exit 2 naming the file and the problem."""
        path = tmp_path / "bad.json"
        path.write_text("{not json")
        result = _run("convert", "--source", "falco", str(path))
        assert 2 == result.returncode
        assert f"{path}: not JSON" in result.stderr

    def test_malformed_audit_fixture_is_a_clear_rejection(self) -> None:
        """`{"kind": 0}` parses, so exit 0, nothing printed, and the rejection on stderr."""
        result = _run(
            "convert", "--source", "audit", str(SHARED_FIXTURES / "audit/fal_01_003.json")
        )
        assert 0 == result.returncode
        assert "" == result.stdout
        assert "rejected (invalid_shape)" in result.stderr

    def test_reports(self) -> None:
        """Kyverno reports convert; kinds of another source are skipped with a note."""
        kyverno = SHARED_FIXTURES / "kyverno/policyreport-pod-pass-fail.yaml"
        trivy = SHARED_FIXTURES / "trivy/vulnerabilityreport-docs-nginx.yaml"
        result = _run("convert", "--source", "kyverno", str(kyverno), str(trivy))
        assert 0 == result.returncode, result.stderr
        observations = [orjson.loads(line) for line in result.stdout.splitlines()]
        assert observations
        assert {"policy_violation"} >= {o["spec"]["eventType"] for o in observations}
        assert "not a kyverno report kind" in result.stderr
