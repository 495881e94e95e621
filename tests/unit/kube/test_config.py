"""Kubeconfig reading that needs no API server: errors that name the problem, token rotation."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
import trustme

from zenwatcher.kube import config as kube_config


async def test_missing_kubeconfig_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(kube_config.KubeConfigError, match=f"cannot read kubeconfig {missing}"):
        await kube_config.load_connection(str(missing))


async def test_invalid_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [unclosed\n")
    with pytest.raises(kube_config.KubeConfigError, match="is not valid YAML"):
        await kube_config.load_connection(str(path))


async def test_a_kubeconfig_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("- just\n- a list\n")
    with pytest.raises(kube_config.KubeConfigError, match="is not a mapping"):
        await kube_config.load_connection(str(path))


def kubeconfig_text(cluster: str, *, current: str = "current-context: x\n") -> str:
    return (
        f"clusters: [{{name: c, cluster: {cluster}}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n" + current
    )


async def test_plain_http_server_with_a_token(tmp_path: Path) -> None:
    """An http:// server (a local proxy) needs no TLS context; the token is sent as Bearer."""
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("{server: 'http://127.0.0.1:8001/'}"))
    connection = await kube_config.load_connection(str(path))
    assert connection.base_url == "http://127.0.0.1:8001"
    assert connection.ssl_context is False
    assert await connection.authorization() == "Bearer abc"


async def test_token_file_is_reread_after_a_minute(tmp_path: Path) -> None:
    """The kubelet rotates projected tokens; a fake clock stands in for the minute."""
    token = tmp_path / "token"
    token.write_text("first\n")
    now = [100.0]
    credentials = kube_config.TokenFile(token, clock=lambda: now[0])
    token.write_text("second\n")
    now[0] += kube_config.TOKEN_REREAD_SECONDS - 1
    assert await credentials.authorization() == "Bearer first"
    now[0] += 1
    assert await credentials.authorization() == "Bearer second"
    token.unlink()  # a failed re-read keeps the last token
    now[0] += kube_config.TOKEN_REREAD_SECONDS
    assert await credentials.authorization() == "Bearer second"


async def test_a_named_ca_is_the_only_one_trusted(tmp_path: Path) -> None:
    """As client-go: with certificate-authority-data, the system's CAs are not trusted too."""
    ca = trustme.CA()
    data = base64.b64encode(ca.cert_pem.bytes()).decode()
    path = tmp_path / "kubeconfig"
    path.write_text(
        kubeconfig_text(f"{{server: 'https://127.0.0.1:6443', certificate-authority-data: {data}}}")
    )
    connection = await kube_config.load_connection(str(path))
    assert isinstance(connection.ssl_context, ssl.SSLContext)
    assert 1 == len(connection.ssl_context.get_ca_certs())


async def test_no_current_context_is_not_guessed(tmp_path: Path) -> None:
    """A context without a name must not match a missing current-context."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:8001'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
        "contexts: [{context: {cluster: c, user: u}}]\n"
    )
    with pytest.raises(kube_config.KubeConfigError):
        await kube_config.load_connection(str(path))


@pytest.mark.parametrize("field", ["tls-server-name", "proxy-url"])
async def test_cluster_fields_our_client_cannot_honour_are_refused(
    tmp_path: Path, field: str
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text(f"{{server: 'https://127.0.0.1:6443', {field}: elsewhere}}"))
    with pytest.raises(kube_config.KubeConfigError, match=f"{field}='elsewhere'"):
        await kube_config.load_connection(str(path))
