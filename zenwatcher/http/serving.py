"""Embedding an aiohttp app without run_app: the daemon owns the loop and the signals.

`AppRunner(handle_signals=False)` + `TCPSite`, with TLS (and client-certificate verification)
when configured. `stop` closes the listener first, then waits for in-flight handlers.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from zenwatcher.settings import ConfigError, WebhookSettings


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
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            "WEBHOOK_TLS_CERT_FILE",
            settings.tls_cert_file,
            f"cannot load it with WEBHOOK_TLS_KEY_FILE={settings.tls_key_file!r}: {error}",
        ) from error
    if settings.tls_client_ca_file:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                "WEBHOOK_TLS_CLIENT_CA_FILE", settings.tls_client_ca_file, f"cannot load: {error}"
            ) from error
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
        self.port = port
        self._host = host
        self._ssl_context = ssl_context

    async def start(self) -> None:
        """Listen; an OSError (the port is taken) leaves nothing set up behind it."""
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self._host, self.port, ssl_context=self._ssl_context, backlog=1024
        )
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish (up to shutdown_timeout), clean up."""
        await self._runner.cleanup()
