"""Where the API server is and how to authenticate: kubeconfig or in-cluster service account.

kubernetes_asyncio's loaders read the kubeconfig (including exec plugins and OIDC) or the pod's
service account; we keep only what our own aiohttp client needs.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import Configuration


class KubeConfigError(RuntimeError):
    """No usable cluster configuration."""


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach one API server."""

    base_url: str
    ssl_context: ssl.SSLContext | bool
    configuration: Configuration  # kept for token refresh (in-cluster tokens rotate)

    async def authorization(self) -> str | None:
        """The Authorization header value, refreshed when the loader says so."""
        value = await self.configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None


async def load_connection(kubeconfig: str = "") -> Connection:
    """In-cluster when running in a pod and no kubeconfig is given, else the kubeconfig."""
    configuration = Configuration()
    try:
        if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
            # kubernetes_asyncio leaves this one untyped.
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            await kube_config.load_kube_config(
                config_file=kubeconfig or None, client_configuration=configuration
            )
    except (kube_config.ConfigException, OSError) as error:
        source = kubeconfig or "~/.kube/config or in-cluster service account"
        raise KubeConfigError(f"no usable Kubernetes configuration ({source}): {error}") from None
    return Connection(
        base_url=str(configuration.host).rstrip("/"),
        ssl_context=_ssl_context(configuration),
        configuration=configuration,
    )


def _ssl_context(configuration: Configuration) -> ssl.SSLContext | bool:
    if not str(configuration.host).startswith("https"):
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
