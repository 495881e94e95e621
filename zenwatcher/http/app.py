"""The webhook application: one route per push source, limits, and the guard around each
handler."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from zenwatcher.http.guard import Handler, add_guarded_routes
from zenwatcher.http.trust import PeerPolicy
from zenwatcher.http.webhooks import Admission, make_handler
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.intake import EventIntake
from zenwatcher.settings import WebhookSettings
from zenwatcher.sources import PUSH_SOURCES


def make_webhook_app(
    *,
    settings: WebhookSettings,
    metrics: Metrics,
    intakes: Mapping[str, EventIntake],
    admission: Admission,
) -> web.Application:
    """POST /falco/webhook and /audit/webhook (each push source's path); other methods 405,
    other paths 404. `intakes` holds one intake per push source, by name."""
    policy = PeerPolicy(allowed=settings.allowed_cidrs, trusted_proxies=settings.trusted_proxies)
    app = web.Application(client_max_size=settings.max_body_bytes)
    routes: list[tuple[str, Handler]] = [
        (
            source.path,
            make_handler(intake=intakes[source.name], split=source.split, admission=admission),
        )
        for source in PUSH_SOURCES
    ]
    add_guarded_routes(app, routes, metrics=metrics, policy=policy, token=settings.auth_token)
    return app
