"""The checks around each webhook handler, composed into one coroutine per route, and the
dispatch by path that serves them.

In order: peer allow-list, bearer token, method; then `Expect: 100-continue` is answered (so a
client such as libcurl, Falco's http_output, sends its body only once it is authorised) and the
handler runs. Every answer is counted by endpoint and status; an HTTP error (413 while reading
the body) is answered as JSON; anything else that escapes a handler is a bug: logged, JSON 500.

These were aiohttp middlewares on a web.Application, but each middleware layer costs every
request a coroutine, a partial and aiohttp's current-app wrapper, and the application's router,
signals and request subclass cost more again; the guard already answers 404 and 405 itself.
So the webhook port is served by aiohttp's low-level server (`zenwatcher.http.serving`) with
one dispatch: a dict from path to guarded handler.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import HttpVersion11, web

from zenwatcher.http.trust import PeerPolicy
from zenwatcher.metrics import Metrics

logger = structlog.get_logger()

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"  # the endpoint label of paths we do not serve (bounded cardinality)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error answer: {"error": message}."""
    return web.Response(
        status=status,
        body=orjson.dumps({"error": message}),
        content_type="application/json",
        headers=headers,
    )


def guarded_dispatch(
    routes: list[tuple[str, Handler]],
    *,
    metrics: Metrics,
    policy: PeerPolicy,
    token: str,
) -> Handler:
    """One handler for the whole port: POST `routes`, each behind its guard, and a guarded 404
    for every other path (any method reaches the guard, which answers 405 itself)."""
    guarded = functools.partial(guard, metrics=metrics, policy=policy, token=token)
    table = {path: guarded(handler, endpoint=path, method="POST") for path, handler in routes}
    unmatched = guarded(not_found, endpoint=UNMATCHED, method=None)

    def dispatch(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        # The guarded handler's coroutine itself, for aiohttp to await: no frame of our own.
        return table.get(request.path, unmatched)(request)

    return dispatch


def guard(
    handler: Handler,
    *,
    endpoint: str,
    method: str | None,
    metrics: Metrics,
    policy: PeerPolicy,
    token: str,
) -> Handler:
    """`handler` behind the allow-list, the token (when set) and `method` (None: any method)."""
    expected = f"Bearer {token}".encode("utf-8", "surrogateescape") if token else b""
    enforcing = policy.enforcing  # the policy does not change while the daemon runs
    counters: dict[int, Any] = {}  # labels() per request costs more than inc()

    async def guarded(request: web.BaseRequest) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            if enforcing and not policy.allows(address := _client_address(request, policy)):
                response = json_error(403, f"client address {address} is not allowed")
            elif expected and not _authenticated(request, expected):
                response = json_error(
                    401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
                )
            elif method is not None and request.method != method:
                response = json_error(405, "Method Not Allowed", headers={"Allow": method})
            elif (
                method is not None
                and "Expect" in request.headers  # most clients send none: no await for them
                and not await _continued(request)
            ):
                response = json_error(417, f"unsupported Expect: {request.headers['Expect']}")
            else:
                response = await handler(request)
        except web.HTTPException as exception:
            response = json_error(exception.status, exception.reason, headers=_kept(exception))
        except Exception:
            logger.exception("webhook_handler_failed", path=request.path)
            response = json_error(500, "internal error")
        counter = counters.get(response.status)
        if counter is None:
            counter = counters[response.status] = metrics.webhook_requests.labels(
                endpoint, str(response.status)
            )
        counter.inc()
        return response

    return guarded


async def _continued(request: web.BaseRequest) -> bool:
    """Answer `Expect: 100-continue` (HTTP/1.1) so the client sends its body; False for an
    expectation we cannot meet (417, as RFC 9110 §10.1.1 asks)."""
    expect = request.headers.get("Expect")
    if expect is None or request.version < HttpVersion11:
        return True
    if expect.lower() != "100-continue":
        return False
    await request.writer.write(_CONTINUE)
    request.writer.output_size = 0  # the interim answer is not part of the response's size
    return True


async def not_found(request: web.BaseRequest) -> web.StreamResponse:
    """The answer for paths no webhook serves."""
    return json_error(404, "Not Found")


def _client_address(request: web.BaseRequest, policy: PeerPolicy) -> str | None:
    # Every X-Forwarded-For line, in order: a proxy may add its own line instead of appending
    # to the client's, and reading only the first would let the client choose its address.
    forwarded = ", ".join(request.headers.getall("X-Forwarded-For", ()))
    return policy.client_address(request.remote, forwarded)


def _authenticated(request: web.BaseRequest, expected: bytes) -> bool:
    """`Authorization: Bearer <token>` matches (constant-time), or the client presented a
    verified certificate (mTLS): Falco's http_output can do mTLS but cannot send headers."""
    # aiohttp decodes header bytes that are not UTF-8 as surrogates; they must compare, not raise.
    given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected) or _has_client_certificate(request)


def _kept(exception: web.HTTPException) -> dict[str, str]:
    return {
        key: value for key, value in exception.headers.items() if key in ("Allow", "Retry-After")
    }


def _has_client_certificate(request: web.BaseRequest) -> bool:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    return ssl_object is not None and bool(ssl_object.getpeercert())
