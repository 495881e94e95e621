"""Embedding aiohttp without run_app: the daemon owns the loop and the signals.

An application (the probes: a router of three GETs) runs on `AppRunner`; the webhooks' one
dispatching handler (`zenwatcher.http.guard.guarded_dispatch`) on aiohttp's low-level server,
with `ServerRunner` and a request factory that carries the body limit. Either way
`handle_signals=False` + `TCPSite`, with TLS (and client-certificate verification) when
configured. `stop` closes the listener first, then waits for in-flight handlers.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from zenwatcher.http.guard import Handler
from zenwatcher.settings import ConfigError, WebhookSettings

RequestFactory = Callable[
    [RawRequestMessage, StreamReader, RequestHandler, AbstractStreamWriter, "asyncio.Task[None]"],
    web.BaseRequest,
]


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
    """One app, or one low-level handler, on one port."""

    def __init__(
        self,
        app: web.Application | Handler,
        *,
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 - a pod serves its cluster network
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 10.0,
        max_body_bytes: int = 1024 * 1024,  # a handler's limit; an app carries its own
    ) -> None:
        self._app = app
        self._runner: web.BaseRunner | None = None
        self._shutdown_timeout = shutdown_timeout
        self._max_body_bytes = max_body_bytes
        self.port = port
        self._host = host
        self._ssl_context = ssl_context

    def _make_runner(self) -> web.BaseRunner:
        if isinstance(self._app, web.Application):
            return web.AppRunner(
                self._app,
                handle_signals=False,
                access_log=None,
                shutdown_timeout=self._shutdown_timeout,
            )
        # The low-level server takes the running loop, so it is made when the server starts.
        # A client that hangs up cancels its handler: the webhook handlers only await the
        # body (nothing is half-done when they stop there), and a handler lingering over the
        # rest of an abandoned body would otherwise outlive its connection by up to 10 s.
        server = web.Server(
            self._app,
            request_factory=bounded_requests(self._max_body_bytes),
            access_log=None,
            handler_cancellation=True,
        )
        return web.ServerRunner(
            server, handle_signals=False, shutdown_timeout=self._shutdown_timeout
        )

    async def start(self) -> None:
        """Listen; an OSError (the port is taken) leaves nothing set up behind it."""
        self._runner = self._make_runner()
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
        if self._runner is not None:
            await self._runner.cleanup()


def bounded_requests(max_body_bytes: int) -> RequestFactory:
    """aiohttp's request factory for the low-level server, with `max_body_bytes` as the limit
    `read()` enforces (413), as web.Application's `client_max_size` does for an app."""
    loop = asyncio.get_running_loop()

    def make_request(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=max_body_bytes
        )

    return make_request
