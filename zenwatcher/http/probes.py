"""/metrics, /healthz and /readyz on METRICS_PORT.

Alive = the event loop answers. Ready = not draining, the API server answered recently, the
namespace selector (if any) has listed once, and on the leader, every informer has listed (a pod
that has not yet tried for the Lease may be the leader, so it waits too). Readiness goes false
first on SIGTERM so load balancers stop sending before the webhooks start answering 503.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


@dataclass(slots=True)
class Readiness:
    """Inputs of /readyz, set by the daemon's tasks."""

    api_reachable: bool = False
    draining: bool = False
    leader_synced: Callable[[], bool] = lambda: True
    scope_synced: Callable[[], bool] = lambda: True  # WATCH_NAMESPACE_SELECTOR listed once

    def problems(self) -> list[str]:
        found = []
        if self.draining:
            found.append("shutting down")
        if not self.api_reachable:
            found.append("API server not reachable")
        if not self.scope_synced():
            found.append("namespace selector not listed yet")
        if not self.leader_synced():
            found.append("leader informers not synced")
        return found


def make_probe_app(*, registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        problems = readiness.problems()
        if problems:
            return web.Response(status=503, text="; ".join(problems))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
