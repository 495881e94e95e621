"""The event pipeline's parts, built once from the settings: the bounded write queue, the dedup
cache, the filters in force, the accounting, the etcd budget, the writer, the flusher, and one
intake per push source (filter -> dedup -> queue)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from zenwatcher.filters import rules
from zenwatcher.filters.state import FilterState
from zenwatcher.kube import observations
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.pacing import TokenBucket
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.budget import INSTANCE, NAMESPACE, Budget
from zenwatcher.pipeline.dedup import DedupCache
from zenwatcher.pipeline.flusher import Flusher
from zenwatcher.pipeline.intake import EventIntake
from zenwatcher.pipeline.jobs import WriteJob
from zenwatcher.pipeline.writer import Writer
from zenwatcher.scope import NamespaceScope
from zenwatcher.settings import Settings
from zenwatcher.sources import PUSH_SOURCES


@dataclass
class Pipeline:
    """The event pipeline's shared parts."""

    queue: asyncio.Queue[WriteJob]
    dedup: DedupCache
    filters: FilterState
    accounting: Accounting
    writer: Writer
    flusher: Flusher
    budget: Budget
    scope: NamespaceScope

    def free_slots(self) -> int:
        """Room left in the write queue (what the webhooks may still accept)."""
        return self.queue.maxsize - self.queue.qsize()


def make_pipeline(
    settings: Settings,
    client: KubeClient,
    metrics: Metrics,
    *,
    scope: NamespaceScope | None = None,
) -> Pipeline:
    """Build the parts; raises `rules.FilterConfigError` for a bad FILTER_FILE. `scope`
    defaults to the settings' static one."""
    config = settings.pipeline
    scope = scope or NamespaceScope.from_settings(settings)
    filters = FilterState()
    if settings.filter_file:
        filters.config = rules.load_filter_file(settings.filter_file)
    accounting = Accounting(metrics)
    queue: asyncio.Queue[WriteJob] = asyncio.Queue(maxsize=config.queue_size)
    metrics.queue_capacity.set(config.queue_size)
    metrics.queue_depth.set_function(queue.qsize)
    dedup = DedupCache(window_seconds=config.dedup_window_seconds, max_size=config.dedup_max_size)
    metrics.dedup_cache_size.set_function(dedup.__len__)
    metrics.dedup_pending.set_function(lambda: dedup.pending_repeats)
    budget = Budget(
        total_limit=config.budget_total,
        namespace_limit=config.budget_per_namespace,
        count=lambda namespace: observations.count_observations(client, namespace=namespace),
        scope=scope.observation_namespaces if scope.dynamic else settings.observation_namespaces,
    )
    metrics.budget_limit.labels(scope=INSTANCE).set(config.budget_total)
    metrics.budget_limit.labels(scope=NAMESPACE).set(config.budget_per_namespace)
    metrics.budget_used.set_function(lambda: budget.total_used)
    metrics.budget_usage.labels(scope=INSTANCE).set_function(budget.total_ratio)
    metrics.budget_usage.labels(scope=NAMESPACE).set_function(budget.fullest_namespace_ratio)
    writer = Writer(
        client=client,
        accounting=accounting,
        metrics=metrics,
        limiter=TokenBucket(rate=config.api_qps, burst=config.api_burst),
        ttl_seconds=settings.ttl_seconds,
        default_namespace=settings.pod_namespace,
        budget=budget,
    )
    flusher = Flusher(dedup=dedup, queue=queue, default_namespace=settings.pod_namespace)
    return Pipeline(
        queue=queue,
        dedup=dedup,
        filters=filters,
        accounting=accounting,
        writer=writer,
        flusher=flusher,
        budget=budget,
        scope=scope,
    )


def make_intakes(settings: Settings, pipeline: Pipeline) -> dict[str, EventIntake]:
    """One intake per push source, keyed by the source's name."""
    return {
        source.name: EventIntake(
            source=source.name,
            map_event=source.new_mapper(),
            filters=pipeline.filters,
            dedup=pipeline.dedup,
            accounting=pipeline.accounting,
            enqueue=pipeline.queue.put_nowait,
            default_namespace=settings.pod_namespace,
            allowed_namespaces=frozenset(settings.watch_namespaces),
            in_scope=pipeline.scope.admits if pipeline.scope.dynamic else None,
            repeat_key=source.repeat_key,
        )
        for source in PUSH_SOURCES
    }
