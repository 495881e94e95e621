"""The webhook application: routes, limits and middlewares, configured from settings."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from zenwatcher.http import middlewares
from zenwatcher.http.trust import PeerPolicy
from zenwatcher.http.webhooks import Admission, make_handler
from zenwatcher.mapping import audit, falco
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.intake import EventIntake
from zenwatcher.settings import WebhookSettings


def make_webhook_app(
    *,
    settings: WebhookSettings,
    metrics: Metrics,
    falco_intake: EventIntake,
    audit_intake: EventIntake,
    admission: Admission,
) -> web.Application:
    """POST /falco/webhook and /audit/webhook; GET on them is 405 (aiohttp's router)."""
    # Middlewares cost on every request: the allow-list and the token check are only installed
    # when configured (the profile of the webhook hot path showed each layer).
    chain = [middlewares.request_counter(metrics=metrics), middlewares.error_mapper()]
    policy = PeerPolicy(allowed=settings.allowed_cidrs, trusted_proxies=settings.trusted_proxies)
    if policy.enforcing:
        chain.append(middlewares.peer_allow_list(policy=policy))
    if settings.auth_token:
        chain.append(middlewares.bearer_auth(token=settings.auth_token))
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=chain)
    routes: list[tuple[str, Any]] = [
        (
            "/falco/webhook",
            make_handler(intake=falco_intake, split=falco.split_falco_body, admission=admission),
        ),
        (
            "/audit/webhook",
            make_handler(intake=audit_intake, split=audit.split_audit_body, admission=admission),
        ),
    ]
    for path, handler in routes:
        app.router.add_post(path, handler)
    return app
