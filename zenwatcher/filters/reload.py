"""Hot reload of the filter ConfigMap (`zen-watcher-filter`, key `filter.json`) on every pod.

A valid update replaces the filter configuration at once; an invalid one keeps the last good
configuration, says why in a log line and sets `zen_watcher_filter_config_valid` to 0. No
ConfigMap (or no key) means everything passes, as in the original operator.
"""

from __future__ import annotations

from typing import Any, NoReturn

import structlog

from zenwatcher.filters import rules
from zenwatcher.filters.state import FilterState
from zenwatcher.informers.informer import informer
from zenwatcher.kube import configmaps
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics

logger = structlog.get_logger()
FILTER_KEY = "filter.json"


class FilterReloader:
    """Informer handler that keeps `state.config` in step with the ConfigMap."""

    def __init__(self, *, state: FilterState, metrics: Metrics, where: str) -> None:
        self._state = state
        self._metrics = metrics
        self._log = logger.bind(configmap=where, key=FILTER_KEY)

    async def on_object(self, obj: dict[str, Any]) -> None:
        raw = (obj.get("data") or {}).get(FILTER_KEY)
        if raw is None:
            self._apply(rules.FilterConfig.empty(), note=f"no {FILTER_KEY} key: all pass")
            return
        try:
            config = rules.parse_filter_config(raw)
        except rules.FilterConfigError as error:
            self._metrics.filter_reloads.labels("invalid").inc()
            self._metrics.filter_config_valid.set(0)
            where = {} if error.position is None else {"position": error.position + 1}
            self._log.error("filter_config_invalid_kept_last_good", error=str(error), **where)
            return
        if config.unknown_keys:
            self._log.warning("filter_config_unknown_keys", keys=list(config.unknown_keys))
        self._apply(config, note="applied")

    async def on_deleted(self, obj: dict[str, Any]) -> None:
        self._apply(rules.FilterConfig.empty(), note="ConfigMap deleted: all pass")

    async def on_listed(self, present: frozenset[tuple[str, str]]) -> None:
        if not present:
            self._apply(rules.FilterConfig.empty(), note="no ConfigMap: all pass")

    def _apply(self, config: rules.FilterConfig, *, note: str) -> None:
        self._state.config = config
        self._metrics.filter_reloads.labels("applied").inc()
        self._metrics.filter_config_valid.set(1)
        expression = config.expression.source if config.expression else None
        self._log.info(
            "filter_config_loaded", note=note, sources=sorted(config.sources), expression=expression
        )


async def filter_watcher(
    *, client: KubeClient, namespace: str, name: str, state: FilterState, metrics: Metrics
) -> NoReturn:
    """Watch the one ConfigMap (a field selector, so RBAC can name just it) forever."""
    path = configmaps.named_collection_path(namespace, name)
    reloader = FilterReloader(state=state, metrics=metrics, where=f"{namespace}/{name}")
    await informer(
        client=client, path=path, resource="configmaps", handler=reloader, metrics=metrics
    )
