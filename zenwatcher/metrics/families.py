"""Every Prometheus metric zen-watcher exposes, registered on a registry passed in.

Accounting (docs/design.md §8): every event that arrives is counted once in `events_received` and
once in `events_total{bucket}`; buckets are created, updated, deduplicated, filtered,
rejected and failed, so `received == sum(buckets)` per source is checkable. The original
operator's metric names are kept alongside for existing dashboards. Counters are LoopCounters
(plain numbers: the daemon increments them on its one event loop, several per request).
"""

from __future__ import annotations

import enum

from prometheus_client import CollectorRegistry, Gauge, Histogram

from zenwatcher import loop_lag
from zenwatcher.mapping.reports.kinds import REPORT_KINDS
from zenwatcher.metrics.counters import LoopCounter
from zenwatcher.metrics.findings import CurrentFindings, FindingsByRule, FindingsMode


class Bucket(enum.StrEnum):
    """Where an event ended (docs/design.md §8)."""

    CREATED = "created"
    UPDATED = "updated"
    DEDUPLICATED = "deduplicated"
    FILTERED = "filtered"
    REJECTED = "rejected"
    FAILED = "failed"
    OVER_BUDGET = "over_budget"  # a new finding the etcd budget had no room for


WRITE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HOUR, _DAY = 3600.0, 86400.0
# Time to resolve a report finding: a fixed check takes minutes, a CVE fix days or weeks.
RESOLVE_BUCKETS = (
    *(60.0, 300.0, 900.0, 1800.0),
    *(_HOUR, 3 * _HOUR, 6 * _HOUR, 12 * _HOUR),
    *(_DAY, 2 * _DAY, 3 * _DAY, 7 * _DAY, 14 * _DAY, 30 * _DAY, 90 * _DAY),
)
DEFAULT_FINDINGS_MAX_SERIES = 2000


class Metrics:
    """The collectors; one instance per process (tests make one per registry)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        findings_mode: FindingsMode = FindingsMode.SIMPLE,
        findings_max_series: int = DEFAULT_FINDINGS_MAX_SERIES,
    ) -> None:
        self.registry = registry
        self.events_received = LoopCounter(
            "zen_watcher_events_received_total",
            "Events (alerts, audit events, report findings) that arrived, by source.",
            ["source"],
            registry=registry,
        )
        self.events = LoopCounter(
            "zen_watcher_events_total",
            "Where each event ended: created, updated, deduplicated, filtered, rejected, failed.",
            ["source", "bucket", "reason"],
            registry=registry,
        )
        self.observations_created = LoopCounter(
            "zen_watcher_observations_created_total",
            "Observations created.",
            ["source", "severity"],
            registry=registry,
        )
        self.observations_updated = LoopCounter(
            "zen_watcher_observations_updated_total",
            "Observation status updates (repeat counts, resolve, reopen).",
            ["source", "reason"],
            registry=registry,
        )
        self.observations_filtered = LoopCounter(
            "zen_watcher_observations_filtered_total",
            "Findings dropped by filters or not mapped, by reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.observations_deduped = LoopCounter(
            "zen_watcher_observations_deduped_total",
            "Repeats absorbed by the in-memory dedup cache.",
            ["source"],
            registry=registry,
        )
        self.create_errors = LoopCounter(
            "zen_watcher_observations_create_errors_total",
            "Writes that failed after retries, by reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.rejected = LoopCounter(
            "zen_watcher_events_rejected_total",
            "Malformed events, counted and skipped, by reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.webhook_requests = LoopCounter(
            "zen_watcher_webhook_requests_total",
            "Webhook HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.api_writes = LoopCounter(
            "zen_watcher_api_writes_total",
            "API server write calls by operation and outcome.",
            ["operation", "outcome"],
            registry=registry,
        )
        self.api_retries = LoopCounter(
            "zen_watcher_api_retries_total",
            "API calls retried after 429, 5xx or connection errors.",
            ["operation", "reason"],
            registry=registry,
        )
        self.write_latency = Histogram(
            "zen_watcher_write_duration_seconds",
            "Latency of one Observation write (create or status update), retries included.",
            ["operation"],
            buckets=WRITE_BUCKETS,
            registry=registry,
        )
        self.webhook_unauthenticated = Gauge(
            "zen_watcher_webhook_unauthenticated",
            "1 when the webhooks accept callers without a token or client certificate "
            "(WEBHOOK_ALLOW_UNAUTHENTICATED=true), else 0.",
            registry=registry,
        )
        self.budget_limit = Gauge(
            "zen_watcher_observation_budget",
            "Observations allowed (OBSERVATION_BUDGET for the instance's scope, "
            "OBSERVATION_BUDGET_PER_NAMESPACE for one namespace); 0 = no limit.",
            ["scope"],
            registry=registry,
        )
        self.budget_used = Gauge(
            "zen_watcher_observations_in_scope",
            "Observations the instance's scope holds, as last counted for the budget.",
            registry=registry,
        )
        self.budget_usage = Gauge(
            "zen_watcher_observation_budget_usage_ratio",
            "Usage against the budget: the instance's scope, and its fullest namespace.",
            ["scope"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "zen_watcher_queue_depth", "Write jobs waiting for a writer.", registry=registry
        )
        self.queue_capacity = Gauge(
            "zen_watcher_queue_capacity", "Write queue capacity (QUEUE_SIZE).", registry=registry
        )
        self.dedup_cache_size = Gauge(
            "zen_watcher_dedup_cache_size", "Entries in the dedup cache.", registry=registry
        )
        self.dedup_pending = Gauge(
            "zen_watcher_dedup_pending_repeats",
            "Absorbed repeats not yet flushed to status.count.",
            registry=registry,
        )
        self.filter_reloads = LoopCounter(
            "zen_watcher_filter_reloads_total",
            "Filter configuration loads by outcome (applied or invalid).",
            ["outcome"],
            registry=registry,
        )
        self.filter_config_valid = Gauge(
            "zen_watcher_filter_config_valid",
            "1 when the last filter configuration seen was valid, 0 when it was refused.",
            registry=registry,
        )
        self.leader = Gauge(
            "zen_watcher_leader", "1 while this pod holds the leader Lease.", registry=registry
        )
        self.leader_transitions = LoopCounter(
            "zen_watcher_leader_transitions_total",
            "Leadership gained or lost by this pod.",
            ["direction"],
            registry=registry,
        )
        self.watch_restarts = LoopCounter(
            "zen_watcher_watch_restarts_total",
            "Watch streams restarted, by resource and reason.",
            ["resource", "reason"],
            registry=registry,
        )
        self.relists = LoopCounter(
            "zen_watcher_relists_total",
            "Full lists (initial, 410 Gone), by resource.",
            ["resource", "reason"],
            registry=registry,
        )
        self.informers_synced = Gauge(
            "zen_watcher_informers_synced",
            "1 when every informer of this leader has listed.",
            registry=registry,
        )
        self.gc_runs = LoopCounter(
            "zen_watcher_gc_runs_total", "GC sweeps by outcome.", ["outcome"], registry=registry
        )
        self.gc_deleted = LoopCounter(
            "zen_watcher_gc_deleted_total",
            "Observations deleted by GC, by reason.",
            ["reason"],
            registry=registry,
        )
        self.gc_errors = LoopCounter(
            "zen_watcher_gc_errors_total",
            "GC delete or list errors.",
            ["reason"],
            registry=registry,
        )
        self.gc_duration = Histogram(
            "zen_watcher_gc_duration_seconds", "Duration of a GC sweep.", registry=registry
        )
        self.event_loop_lag = Histogram(
            "zen_watcher_event_loop_lag_seconds",
            f"How late a timer due every {loop_lag.INTERVAL} s ran: how long the event loop, "
            "which serves the webhooks, writers and elector, was held by other work.",
            buckets=loop_lag.BUCKETS,
            registry=registry,
        )
        self.reconciles = LoopCounter(
            "zen_watcher_report_reconciles_total",
            "Report events reconciled, by kind and outcome: ok, or rejected (the report was "
            "malformed or its mapping failed; its findings were left as they were).",
            ["kind", "outcome"],
            registry=registry,
        )
        # The findings themselves (docs/design.md §8): new ones by rule, how long report
        # findings stay open, reopens, and (on the leader) the ones that exist now.
        self.findings_detected = FindingsByRule(
            mode=findings_mode, max_series=findings_max_series, registry=registry
        )
        self.time_to_resolve = Histogram(
            "zen_watcher_finding_time_to_resolve_seconds",
            "From detectedAt to resolvedAt of a report finding, observed once when it turns "
            "Resolved, by source and severity.",
            ["source", "severity"],
            buckets=RESOLVE_BUCKETS,
            registry=registry,
        )
        self.findings_reopened = LoopCounter(
            "zen_watcher_findings_reopened_total",
            "Resolved report findings that came back (turned Open again), by source.",
            ["source"],
            registry=registry,
        )
        self.findings_current = CurrentFindings(registry=registry)
        self._preinitialise()

    def _preinitialise(self) -> None:
        """Create every label set known up front, at 0, so dashboards and alerts see series
        from the first scrape and `rate()`/`increase()` count the first increment too (a
        counter that appears at 1 looks to Prometheus as if it had always been 1)."""
        for outcome in ("ok", "error"):
            self.gc_runs.labels(outcome=outcome)
        for reason in ("ttl_last_seen", "ttl_created", "ttl_resolved"):  # observation.REASON_*
            self.gc_deleted.labels(reason=reason)
        for reason in ("bad_timestamp", "list", "delete"):  # garbage.ERROR_*
            self.gc_errors.labels(reason=reason)
        for direction in ("acquired", "lost"):
            self.leader_transitions.labels(direction=direction)
        for outcome in ("applied", "invalid"):
            self.filter_reloads.labels(outcome=outcome)
        # The filter ConfigMap informer and one informer per report kind (informer.py reasons).
        for resource in ("configmaps", *(kind.plural for kind in REPORT_KINDS)):
            for reason in ("normal_end", "gone", "timeout", "error"):
                self.watch_restarts.labels(resource=resource, reason=reason)
            for reason in ("initial", "gone"):
                self.relists.labels(resource=resource, reason=reason)
