"""Connecting to the real API server the ways users configure it: in-cluster service account,
kubeconfigs with a token, a token file or a client certificate (read by our own loader, without
importing kubernetes_asyncio), and an exec plugin (handed to kubernetes_asyncio's loader).

Who we are is asked of the API server itself (a SelfSubjectReview), so each test shows that the
credentials were sent and accepted, not just parsed.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.harness.controlplane import cluster, controlplane
from tests.harness.controlplane.identity import user_info
from tests.harness.paths import REPO_ROOT
from zenwatcher.kube import config as kube_config
from zenwatcher.kube.client import KubeClient

WHOAMI = textwrap.dedent(
    """
    import asyncio, sys, orjson
    from tests.harness.controlplane.identity import user_info
    from zenwatcher.kube import config
    from zenwatcher.kube.client import KubeClient

    async def main():
        client = KubeClient(connection=await config.load_connection(sys.argv[1]))
        try:
            user = await user_info(client)
        finally:
            await client.close()
        print(orjson.dumps({
            "username": user["username"],
            "groups": user.get("groups", []),
            "loader_imported": "kubernetes_asyncio" in sys.modules,
        }).decode())

    asyncio.run(main())
    """
)


def whoami(kubeconfig: Path) -> dict[str, Any]:
    """Connect with `kubeconfig` in a fresh interpreter: who the API server says we are."""
    result = subprocess.run(
        [sys.executable, "-c", WHOAMI, str(kubeconfig)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = orjson.loads(result.stdout)
    return answer


def local_plane(control_plane: cluster.Cluster) -> controlplane.ControlPlane:
    if control_plane.local is None:
        pytest.skip("needs the local control plane's CA and static tokens")
    return control_plane.local


def kubeconfig_for(plane: controlplane.ControlPlane, user: dict[str, Any]) -> dict[str, Any]:
    ca_data = base64.b64encode(plane.ca_file.read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": plane.url, "certificate-authority-data": ca_data},
            }
        ],
        "users": [{"name": "someone", "user": user}],
        "contexts": [{"name": "here", "context": {"cluster": "local", "user": "someone"}}],
        "current-context": "here",
    }


def write_yaml(path: Path, value: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(value))
    return path


def test_token_kubeconfig_is_read_without_kubernetes_asyncio(
    control_plane: cluster.Cluster,
) -> None:
    """The test suite's own kubeconfigs (a token) connect, and the loader is never imported."""
    answer = whoami(control_plane.kubeconfig("zen-watcher"))
    if control_plane.local is not None:
        assert answer["username"] == controlplane.WATCHER_USER
    assert answer["loader_imported"] is False


def test_token_file_relative_to_the_kubeconfig(
    control_plane: cluster.Cluster, tmp_path: Path
) -> None:
    plane = local_plane(control_plane)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text(controlplane.WATCHER_TOKEN + "\n")
    config = kubeconfig_for(plane, {"tokenFile": "secrets/token"})
    answer = whoami(write_yaml(tmp_path / "kubeconfig", config))
    assert answer == {
        "username": controlplane.WATCHER_USER,
        "groups": ["system:authenticated"],
        "loader_imported": False,
    }


def test_client_certificate_data(control_plane: cluster.Cluster, tmp_path: Path) -> None:
    """A certificate embedded as base64 data: CN is the user, O the group."""
    plane = local_plane(control_plane)
    cert, key = plane.issue_client_certificate("cert-user", "cert-group")
    config = kubeconfig_for(
        plane,
        {
            "client-certificate-data": base64.b64encode(cert).decode(),
            "client-key-data": base64.b64encode(key).decode(),
        },
    )
    answer = whoami(write_yaml(tmp_path / "kubeconfig", config))
    assert answer["username"] == "cert-user"
    assert "cert-group" in answer["groups"]
    assert answer["loader_imported"] is False


def test_client_certificate_files(control_plane: cluster.Cluster, tmp_path: Path) -> None:
    """Certificate, key and CA as files named relative to the kubeconfig's folder."""
    plane = local_plane(control_plane)
    cert, key = plane.issue_client_certificate("file-user")
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "user.crt").write_bytes(cert)
    (tmp_path / "pki" / "user.key").write_bytes(key)
    (tmp_path / "pki" / "ca.crt").write_bytes(plane.ca_file.read_bytes())
    config = kubeconfig_for(
        plane, {"client-certificate": "pki/user.crt", "client-key": "pki/user.key"}
    )
    config["clusters"][0]["cluster"] = {"server": plane.url, "certificate-authority": "pki/ca.crt"}
    answer = whoami(write_yaml(tmp_path / "kubeconfig", config))
    assert answer["username"] == "file-user"


def test_exec_plugin_goes_through_kubernetes_asyncio(
    control_plane: cluster.Cluster, tmp_path: Path
) -> None:
    """An exec credential plugin (EKS, GKE, kubelogin) is run by kubernetes_asyncio's loader."""
    plane = local_plane(control_plane)
    plugin = tmp_path / "credential-plugin.py"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": controlplane.ADMIN_TOKEN},
    }
    plugin.write_text(f"import json\nprint(json.dumps({credential!r}))\n")
    config = kubeconfig_for(
        plane,
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(plugin)],
                "interactiveMode": "Never",
            }
        },
    )
    answer = whoami(write_yaml(tmp_path / "kubeconfig", config))
    assert answer["username"] == "admin"
    assert answer["loader_imported"] is True


async def test_in_cluster_service_account(
    control_plane: cluster.Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod: the API server from KUBERNETES_SERVICE_HOST/PORT, token and CA from files."""
    plane = local_plane(control_plane)
    (tmp_path / "token").write_text(controlplane.WATCHER_TOKEN)
    (tmp_path / "ca.crt").write_bytes(plane.ca_file.read_bytes())
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(plane.port))
    connection = await kube_config.load_connection("", service_account_dir=tmp_path)
    client = KubeClient(connection=connection, timeout=10.0)
    try:
        user = await user_info(client)
    finally:
        await client.close()
    assert user["username"] == controlplane.WATCHER_USER


async def test_in_cluster_without_a_service_account_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    with pytest.raises(kube_config.KubeConfigError, match=str(tmp_path)):
        await kube_config.load_connection("", service_account_dir=tmp_path)
