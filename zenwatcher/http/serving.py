"""Embedding an aiohttp app without run_app: the daemon owns the loop and the signals.

`AppRunner(handle_signals=False)` + `TCPSite`, with TLS (and client-certificate verification)
when configured. `stop` closes the listener first, then waits for in-flight handlers.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from zenwatcher.settings import WebhookSettings


def tls_context(settings: WebhookSettings) -> ssl.SSLContext | None:
    """Server TLS from the certificate files, verifying client certificates against the client
    CA when one is given (mTLS).

    With a token as well, a certificate is optional: a client may present a verified
    certificate (Falco, which cannot send headers) or the token (the API server's audit
    backend); the guard accepts either. Without a token the certificate is the only credential,
    so the handshake requires it.
    """
    if not settings.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    if settings.tls_client_ca_file:
        context.load_verify_locations(cafile=settings.tls_client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL if settings.auth_token else ssl.CERT_REQUIRED
    return context


class Server:
    """One app on one port."""

    def __init__(
        self,
        app: web.Application,
        *,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 - a pod serves its cluster network
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
        )
        self._port = port
        self._host = host
        self._ssl_context = ssl_context

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self._host, self._port, ssl_context=self._ssl_context, backlog=1024
        )
        await site.start()

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (up to shutdown_timeout), clean up."""
        await self._runner.cleanup()
