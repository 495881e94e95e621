"""The webhook listener's one handler: a route per push source, each behind its guard."""

from __future__ import annotations

from collections.abc import Mapping

from zenwatcher.http.guard import Handler, guarded_dispatch
from zenwatcher.http.trust import PeerPolicy
from zenwatcher.http.webhooks import Admission, make_handler
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.intake import EventIntake
from zenwatcher.settings import WebhookSettings
from zenwatcher.sources import PUSH_SOURCES


def make_webhook_handler(
    *,
    settings: WebhookSettings,
    metrics: Metrics,
    intakes: Mapping[str, EventIntake],
    admission: Admission,
) -> Handler:
    """POST /falco/webhook and /audit/webhook (each push source's path); other methods 405,
    other paths 404. `intakes` holds one intake per push source, by name. Served by
    `zenwatcher.http.serving.Server` with the body limit `settings.max_body_bytes`."""
    policy = PeerPolicy(allowed=settings.allowed_cidrs, trusted_proxies=settings.trusted_proxies)
    routes: list[tuple[str, Handler]] = [
        (
            source.path,
            make_handler(intake=intakes[source.name], split=source.split, admission=admission),
        )
        for source in PUSH_SOURCES
    ]
    return guarded_dispatch(routes, metrics=metrics, policy=policy, token=settings.auth_token)
