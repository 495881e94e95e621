"""The webhook application: routes, limits and the guard around each handler."""

from __future__ import annotations

from aiohttp import web

from zenwatcher.http.guard import Handler, add_guarded_routes
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
    """POST /falco/webhook and /audit/webhook; other methods 405, other paths 404."""
    policy = PeerPolicy(allowed=settings.allowed_cidrs, trusted_proxies=settings.trusted_proxies)
    app = web.Application(client_max_size=settings.max_body_bytes)
    routes: list[tuple[str, Handler]] = [
        (
            "/falco/webhook",
            make_handler(intake=falco_intake, split=falco.split_falco_body, admission=admission),
        ),
        (
            "/audit/webhook",
            make_handler(intake=audit_intake, split=audit.split_audit_body, admission=admission),
        ),
    ]
    add_guarded_routes(app, routes, metrics=metrics, policy=policy, token=settings.auth_token)
    return app
