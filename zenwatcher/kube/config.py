"""Where the API server is and how to authenticate: the pod's service account or a kubeconfig.

The in-cluster service account, and kubeconfigs whose user has a token or a client certificate,
are read here directly. A kubeconfig that needs more (an exec plugin, an auth provider such as
OIDC, basic auth, or several files merged through KUBECONFIG) goes through kubernetes_asyncio's
loader, imported only then: importing it loads every API model class and costs a pod about
40 MiB of its memory.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Bound service-account tokens rotate; client-go re-reads the file about once a minute too.
TOKEN_REREAD_SECONDS = 60.0
DEFAULT_KUBECONFIG = "~/.kube/config"

# User fields we handle ourselves; any other one needs kubernetes_asyncio's loader.
_OWN_USER_FIELDS = frozenset(
    {
        "token",
        "tokenFile",
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
    }
)

# Cluster fields our client cannot honour; connecting without them would be wrong, not degraded.
_UNSUPPORTED_CLUSTER_FIELDS = ("tls-server-name", "proxy-url")


class KubeConfigError(RuntimeError):
    """No usable cluster configuration."""


class Credentials(Protocol):
    """What goes in each request's Authorization header."""

    async def authorization(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A bearer token written in the kubeconfig, or none (client certificates)."""

    token: str = ""

    async def authorization(self) -> str | None:
        return f"Bearer {self.token}" if self.token else None


class TokenFile:
    """A token read from a file and re-read every minute, since the kubelet rotates it."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._token = self._read()
        self._read_at = clock()

    async def authorization(self) -> str | None:
        if self._clock() - self._read_at >= TOKEN_REREAD_SECONDS:
            self._read_at = self._clock()
            # A failed re-read keeps the last token (valid well past a minute); next try later.
            with contextlib.suppress(OSError):
                self._token = self._read()
        return f"Bearer {self._token}" if self._token else None

    def _read(self) -> str:
        return self.path.read_text().strip()


class _LoaderCredentials:
    """Credentials kubernetes_asyncio's loader set up (exec plugins and OIDC refresh there)."""

    def __init__(self, configuration: Any) -> None:
        self._configuration = configuration

    async def authorization(self) -> str | None:
        value = await self._configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach one API server."""

    base_url: str
    ssl_context: ssl.SSLContext | bool
    credentials: Credentials

    async def authorization(self) -> str | None:
        """The Authorization header value, or None."""
        return await self.credentials.authorization()


async def load_connection(
    kubeconfig: str = "", *, service_account_dir: Path = SERVICE_ACCOUNT_DIR
) -> Connection:
    """In-cluster when running in a pod and no kubeconfig is given, else the kubeconfig."""
    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_connection(service_account_dir)
    own = None if os.pathsep in kubeconfig else _own_connection_from(kubeconfig)
    return own or await _loader_connection(kubeconfig)


def _own_connection_from(kubeconfig: str) -> Connection | None:
    path = Path(kubeconfig or DEFAULT_KUBECONFIG).expanduser()
    return _own_connection(_read_kubeconfig(path, given=bool(kubeconfig)), path.parent)


def in_cluster_connection(service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> Connection:
    """The pod's service account: the API server from the environment, token and CA from files."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    try:
        credentials = TokenFile(service_account_dir / "token")
        context = ssl.create_default_context(cafile=str(service_account_dir / "ca.crt"))
    except OSError as error:
        raise KubeConfigError(
            f"no usable in-cluster service account in {service_account_dir}: {error}"
        ) from None
    return Connection(
        base_url=f"https://{host}:{port}", ssl_context=context, credentials=credentials
    )


def _read_kubeconfig(path: Path, *, given: bool) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as error:
        hint = "" if given else " (not in a pod: set KUBECONFIG to a kubeconfig file)"
        raise KubeConfigError(f"cannot read kubeconfig {path}: {error.strerror}{hint}") from None
    except yaml.YAMLError as error:
        raise KubeConfigError(f"kubeconfig {path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise KubeConfigError(f"kubeconfig {path} is not a mapping")
    return config


def _own_connection(config: dict[str, Any], base_dir: Path) -> Connection | None:
    """The connection of the current context, or None when the loader must handle it."""
    context = _named(config, "contexts", config.get("current-context"), "context")
    if context is None:
        return None
    cluster = _named(config, "clusters", context.get("cluster"), "cluster")
    user = _named(config, "users", context.get("user"), "user") or {}
    if (
        cluster is None
        or not isinstance(cluster.get("server"), str)
        or set(user) - _OWN_USER_FIELDS
    ):
        return None
    for field in _UNSUPPORTED_CLUSTER_FIELDS:
        if cluster.get(field):
            raise KubeConfigError(
                f"kubeconfig cluster field {field}={cluster[field]!r} is not supported; "
                "use a server URL the API server's certificate names, reachable directly"
            )
    server = str(cluster["server"]).rstrip("/")
    try:
        credentials = _credentials(user, base_dir)
        context_ssl = _ssl_context(server, cluster, user, base_dir)
    except (OSError, ValueError, ssl.SSLError) as error:
        raise KubeConfigError(f"unusable kubeconfig credentials: {error}") from None
    return Connection(base_url=server, ssl_context=context_ssl, credentials=credentials)


def _named(config: dict[str, Any], section: str, name: object, field: str) -> dict[str, Any] | None:
    if not isinstance(name, str) or not name:
        return None
    entries = config.get(section)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(field)
            return value if isinstance(value, dict) else {}
    return None


def _credentials(user: dict[str, Any], base_dir: Path) -> Credentials:
    if user.get("token"):
        return StaticToken(str(user["token"]))
    if user.get("tokenFile"):
        return TokenFile(base_dir / str(user["tokenFile"]))
    return StaticToken()


def _ssl_context(
    server: str, cluster: dict[str, Any], user: dict[str, Any], base_dir: Path
) -> ssl.SSLContext | bool:
    if not server.startswith("https"):
        return False
    # A named CA is the only one trusted (as client-go does); the system store only without one.
    if cluster.get("certificate-authority-data"):
        pem = base64.b64decode(str(cluster["certificate-authority-data"])).decode()
        context = ssl.create_default_context(cadata=pem)
    elif cluster.get("certificate-authority"):
        ca_file = str(base_dir / str(cluster["certificate-authority"]))
        context = ssl.create_default_context(cafile=ca_file)
    else:
        context = ssl.create_default_context()
    with (
        _pem_file(user, "client-certificate", base_dir) as cert,
        _pem_file(user, "client-key", base_dir) as key,
    ):
        if cert:
            context.load_cert_chain(cert, keyfile=key or None)
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.contextmanager
def _pem_file(user: dict[str, Any], field: str, base_dir: Path) -> Iterator[str]:
    """A path to the PEM in `field` or `field-data` (written to a private temporary file)."""
    if user.get(f"{field}-data"):
        with tempfile.TemporaryDirectory(prefix="zen-watcher-") as folder:
            path = Path(folder) / "pem"
            path.write_bytes(base64.b64decode(str(user[f"{field}-data"])))
            yield str(path)  # ssl reads it before the folder goes
    elif user.get(field):
        yield str(base_dir / str(user[field]))
    else:
        yield ""


async def _loader_connection(kubeconfig: str) -> Connection:
    from kubernetes_asyncio import config as loader  # noqa: PLC0415 - about 40 MiB, only here
    from kubernetes_asyncio.client import Configuration  # noqa: PLC0415

    configuration = Configuration()
    try:
        await loader.load_kube_config(
            config_file=kubeconfig or None, client_configuration=configuration
        )
    except (loader.ConfigException, OSError) as error:
        source = kubeconfig or f"{DEFAULT_KUBECONFIG} or in-cluster service account"
        raise KubeConfigError(f"no usable Kubernetes configuration ({source}): {error}") from None
    return Connection(
        base_url=str(configuration.host).rstrip("/"),
        ssl_context=_loader_ssl_context(configuration),
        credentials=_LoaderCredentials(configuration),
    )


def _loader_ssl_context(configuration: Any) -> ssl.SSLContext | bool:
    if not str(configuration.host).startswith("https"):
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
