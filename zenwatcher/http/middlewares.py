"""Webhook middlewares, each built by a keyword-configured factory (aiohttp's habit).

Order (outermost first): request accounting, peer allow-list, bearer auth, error mapping. Bad
input is a 4xx with a JSON reason; an exception that escapes a handler is a bug, logged, 500.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from zenwatcher.http.trust import PeerPolicy
from zenwatcher.metrics import Metrics

logger = structlog.get_logger()


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error answer: {"error": message}."""
    return web.Response(
        status=status,
        body=orjson.dumps({"error": message}),
        content_type="application/json",
        headers=headers,
    )


def request_counter(*, metrics: Metrics) -> Middleware:
    """Count every webhook request by endpoint and final status."""

    children: dict[tuple[str, int], Any] = {}  # labels() per request costs more than inc()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else "unmatched"
        )
        status = 500
        try:
            response = await handler(request)
        except web.HTTPException as exception:
            status = exception.status
            raise
        else:
            status = response.status
        finally:
            child = children.get((endpoint, status))
            if child is None:
                child = children[endpoint, status] = metrics.webhook_requests.labels(
                    endpoint, str(status)
                )
            child.inc()
        return response

    return middleware


def peer_allow_list(*, policy: PeerPolicy) -> Middleware:
    """403 for peers outside WEBHOOK_ALLOWED_CIDRS (when set)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if policy.enforcing:
            address = policy.client_address(request.remote, request.headers.get("X-Forwarded-For"))
            if not policy.allows(address):
                return json_error(403, f"client address {address} is not allowed")
        return await handler(request)

    return middleware


def bearer_auth(*, token: str) -> Middleware:
    """401 unless `Authorization: Bearer <token>` matches (constant-time); no-op without token.

    A client that presented a verified certificate (mTLS) is authenticated by it already:
    Falco's http_output can do mTLS but cannot send headers.
    """
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and not _has_client_certificate(request):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return json_error(
                    401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
                )
        return await handler(request)

    return middleware


def error_mapper() -> Middleware:
    """HTTP exceptions pass through; anything else is a bug: log it and answer a JSON 500."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exception:
            if exception.status >= 400 and exception.content_type != "application/json":
                return json_error(exception.status, exception.reason, headers=_keep(exception))
            raise
        except Exception:
            logger.exception("webhook_handler_failed", path=request.path)
            return json_error(500, "internal error")

    return middleware


def _keep(exception: web.HTTPException) -> dict[str, str]:
    return {
        key: value for key, value in exception.headers.items() if key in ("Allow", "Retry-After")
    }


def _has_client_certificate(request: web.Request) -> bool:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    return (
        ssl_object is not None
        and ssl_object.getpeercert() is not None
        and bool(ssl_object.getpeercert())
    )
