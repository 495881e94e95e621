"""The report controller (leader only): report informers → mapping → filters → ledger → writer.

One leadership term: read the Observations that carry an origin label (actual state), discover
which report APIs are served, run one informer per kind and namespace, and turn every report
event into ledger verdicts; the writer creates or reopens, a resolver task resolves what no
report wants once its grace has passed. After the first full sync, Observations whose report
vanished while nobody was leading start their grace too. Reports themselves are never kept.

With WATCH_NAMESPACE_SELECTOR the namespaces change during the term: a namespace entering the
scope gets its Observations read and its informers started (and, once they listed, its orphans
their grace); one leaving has its informers cancelled and is forgotten by the ledger, its
Observations left exactly as they are (docs/design.md §7.3).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NoReturn

import structlog

from zenwatcher.filters import rules
from zenwatcher.filters.droplog import DROP_LOG
from zenwatcher.finding import Finding
from zenwatcher.informers import informer
from zenwatcher.kube import discovery, errors, observations
from zenwatcher.leader.context import LeaderContext
from zenwatcher.mapping.rejection import INTERNAL_ERROR, Ignored, Rejected
from zenwatcher.mapping.reports import common, dispatch, kinds
from zenwatcher.observation import (
    LABEL_ORIGIN,
    Existing,
    existing_from,
    observation_namespace,
)
from zenwatcher.pacing import Backoff
from zenwatcher.pipeline.jobs import OpenJob, ResolveJob, Term, WriteJob
from zenwatcher.pipeline.reconciling import Ledger, Scope
from zenwatcher.scope import NamespaceScope

logger = structlog.get_logger()
RESOLVE_INTERVAL = 1.0
# A VulnerabilityReport can hold thousands of entries: list them 50 at a time, so the first
# sync holds one modest page while it waits on the write queue.
REPORT_LIST_PAGE_SIZE = 50
# Reports may fill at most this share of the write queue; the rest stays free for webhooks.
REPORT_QUEUE_SHARE = 0.5
QUEUE_WAIT_SECONDS = 0.02
MAX_DEFERRED = 10_000  # Opens over budget remembered per term (about 2 KiB each)
DEFERRED_PER_TICK = 500


class ReportController:
    """Everything one leadership term does with reports."""

    def __init__(
        self,
        *,
        context: LeaderContext,
        term: Term | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._term = term or Term()
        self._term.open_failed = self._open_failed
        self._term.open_deferred = self._open_deferred
        self._budget = context.budget
        # Opens the etcd budget had no room for, most severe first when room comes back.
        self._deferred: dict[str, OpenJob] = {}
        self._client = context.client
        self._settings = context.settings
        self._queue = context.queue
        self._filters = context.filters
        self._accounting = context.accounting
        self._metrics = context.metrics
        self._wall_clock = wall_clock
        self._ledger = Ledger(grace_seconds=context.settings.report_resolve_grace_seconds)
        self._scope = context.scope or NamespaceScope.from_settings(context.settings)
        # Informers by (kind, namespace) ("" = cluster-wide); the first sync's are also in
        # _synced, which readiness waits for (a namespace entering later does not unready us).
        self._informers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._synced: dict[tuple[str, str], asyncio.Event] = {}
        self._listed: dict[tuple[str, str], asyncio.Event] = {}  # every informer's
        self._available: dict[str, kinds.ReportKind] = {}  # namespaced kinds served, by kind
        self._namespaces: set[str] = set()  # with a selector: the namespaces set up so far
        self._entering: dict[str, asyncio.Task[None]] = {}
        self._changes: list[tuple[str, bool]] = []  # scope changes before the group is up
        self._group: asyncio.TaskGroup | None = None
        self._initial_sync_done = False
        self._discovery_failed: frozenset[str] = frozenset()

    def _open_deferred(self, job: OpenJob) -> None:
        # Called by a writer, like _open_failed. Beyond MAX_DEFERRED, a finding waits for its
        # report's next change or the next term's relist instead.
        self._ledger.forget(job.finding.name)
        if len(self._deferred) < MAX_DEFERRED:
            self._deferred[job.finding.name] = job

    def _open_failed(self, name: str) -> None:
        # Called by a writer; the same event loop, so no lock.
        self._ledger.forget(name)

    async def _put(self, job: WriteJob) -> None:
        """Queue a report write, leaving the webhooks their share of the queue.

        A large sync has far more findings than the queue holds; were reports to fill it, the
        leader's webhooks would answer 503 until the sync ends. They wait instead, here.
        """
        limit = max(1, int(self._queue.maxsize * REPORT_QUEUE_SHARE))
        # asyncio.Queue signals no threshold; a 20 ms poll costs nothing next to a write.
        while self._queue.maxsize > 0 and self._queue.qsize() >= limit:  # noqa: ASYNC110
            await asyncio.sleep(QUEUE_WAIT_SECONDS)
        self._queue.put_nowait(job)  # no await since the check: there is room

    def synced(self) -> bool:
        """True once every informer started so far has completed its first list."""
        return self._initial_sync_done and all(event.is_set() for event in self._synced.values())

    async def run(self) -> NoReturn:
        """The leadership term's report work; runs until cancelled."""
        unsubscribe = None
        if self._scope.dynamic:
            await self._scope.synced.wait()
            # Changes from here on are queued until the informers' group exists.
            unsubscribe = self._scope.subscribe(self)
            self._namespaces = set(self._scope.watched())
        try:
            await self._load_existing(self._scope.observation_namespaces())
            async with asyncio.TaskGroup() as group:
                self._group = group
                finder = discovery.Discovery(
                    client=self._client,
                    wanted=self._wanted_kinds(),
                    on_available=self._kind_available,
                )
                self._finder = finder
                # Definite answers first: a kind taken as unserved because one call failed
                # would get no informer, and the sync below would resolve all of its Open
                # findings.
                self._discovery_failed = await finder.check(definite=True)
                group.create_task(finder.run(), name="report-discovery")
                group.create_task(self._resolver(), name="report-resolver")
                changes, self._changes = self._changes, []
                for namespace, entered in changes:
                    self._scope_changed(namespace, entered=entered)
                await self._wait_initial_sync()
        finally:
            self._group = None
            if unsubscribe is not None:
                unsubscribe()
        raise AssertionError("report controller tasks ended")  # pragma: no cover

    def namespace_entered(self, namespace: str) -> None:
        """The selector matches `namespace` now (a ScopeListener call)."""
        self._scope_changed(namespace, entered=True)

    def namespace_left(self, namespace: str) -> None:
        """The selector no longer matches `namespace` (a ScopeListener call)."""
        self._scope_changed(namespace, entered=False)

    def _scope_changed(self, namespace: str, *, entered: bool) -> None:
        if self._group is None:
            self._changes.append((namespace, entered))
        elif entered:
            self._enter(namespace, self._group)
        else:
            self._leave(namespace)

    def _enter(self, namespace: str, group: asyncio.TaskGroup) -> None:
        if namespace in self._namespaces:
            return
        set_up = self._set_up_namespace(namespace, group)
        try:
            task = group.create_task(set_up, name=f"namespace-{namespace}")
        except RuntimeError:
            # The term is ending and its group takes no new task; the next term reads the
            # scope afresh, this namespace included.
            set_up.close()
            logger.info("namespace_left_to_next_term", namespace=namespace)
            return
        self._namespaces.add(namespace)
        self._entering[namespace] = task

    async def _set_up_namespace(self, namespace: str, group: asyncio.TaskGroup) -> None:
        """A namespace entered the scope: its Observations, its informers, then its orphans."""
        started = self._wall_clock()
        await self._load_existing((namespace,))
        events = [
            self._start(kind, namespace, group, readiness=False)
            for kind in list(self._available.values())
        ]
        await asyncio.gather(*(event.wait() for event in events))
        if self._initial_sync_done and not self._discovery_failed:
            self._ledger.orphans_after_sync(namespace)
        elapsed = (self._wall_clock() - started).total_seconds()
        logger.info("namespace_synced", namespace=namespace, seconds=round(elapsed, 3))
        self._entering.pop(namespace, None)

    def _leave(self, namespace: str) -> None:
        """A namespace left the scope: stop watching it and forget it, resolving nothing."""
        if namespace not in self._namespaces:
            return
        self._namespaces.discard(namespace)
        entering = self._entering.pop(namespace, None)
        if entering is not None:
            entering.cancel()
        for key in [key for key in self._informers if key[1] == namespace]:
            self._informers.pop(key).cancel()
            self._synced.pop(key, None)
            # Set, so nothing (the first sync's wait) is left waiting on a cancelled informer.
            self._listed.pop(key).set()
        # Our own namespace stays in scope: cluster reports' findings live there.
        origins = self._ledger.forget_namespace(
            namespace, observations_too=namespace != self._settings.pod_namespace
        )
        for name in [n for n, job in self._deferred.items() if job.namespace == namespace]:
            del self._deferred[name]
        logger.info("namespace_forgotten", namespace=namespace, origins=origins)

    def _wanted_kinds(self) -> list[kinds.ReportKind]:
        if self._settings.watch_cluster_reports:
            return list(kinds.REPORT_KINDS)
        return [kind for kind in kinds.REPORT_KINDS if kind.namespaced]

    async def _load_existing(self, namespaces: tuple[str, ...]) -> None:
        """Actual state: Observations carrying an origin label in `namespaces` (() = all).

        A 429, 5xx or lost connection (a restarting API server) is retried with backoff here
        rather than ending the leadership term.
        """
        backoff = Backoff()
        while True:
            try:
                # Into the ledger only once complete: a failed attempt's partial list may name
                # Observations deleted before the next one.
                known = await self._list_existing(namespaces)
            except (errors.ApiError, errors.TransportError) as error:
                if not errors.is_retriable(error):
                    raise
                hint = errors.retry_hint(error)
                delay = backoff.next_delay(hint=hint)
                logger.warning("report_observations_load_retry", error=str(error), delay=delay)
                await asyncio.sleep(delay)
            else:
                for name, existing in known:
                    self._ledger.know(name, existing)
                logger.info("report_observations_loaded", count=len(self._ledger))
                return

    async def _list_existing(self, namespaces: tuple[str, ...]) -> list[tuple[str, Existing]]:
        # Our own namespace is among them: where cluster-report findings go.
        scopes: tuple[str | None, ...] = namespaces or (None,)
        return [
            existing_from(item)
            for namespace in scopes
            async for item in observations.list_observations(
                self._client, namespace=namespace, label_selector=LABEL_ORIGIN
            )
        ]

    async def _kind_available(self, kind: kinds.ReportKind) -> None:
        group = self._group
        if group is None:  # pragma: no cover - discovery runs inside the group
            return
        if not kind.namespaced:
            self._start(kind, "", group)
        elif self._scope.dynamic:
            self._available[kind.kind] = kind
            for namespace in sorted(self._namespaces):
                self._start(kind, namespace, group)
        else:
            for path in discovery.kind_paths(kind, self._scope.watched()):
                self._start(kind, _namespace_of(path), group)

    def _start(
        self,
        kind: kinds.ReportKind,
        namespace: str,
        group: asyncio.TaskGroup,
        *,
        readiness: bool = True,
    ) -> asyncio.Event:
        """The informer of `kind` in `namespace` ("" = cluster-wide), unless it runs; answers
        the event set once it has listed."""
        key = (kind.kind, namespace)
        running = self._informers.get(key)
        if running is not None and not running.done():
            return self._listed[key]
        (path,) = discovery.kind_paths(kind, (namespace,) if namespace else ())
        scope: Scope = key
        synced = asyncio.Event()
        self._listed[key] = synced
        if readiness or not self._initial_sync_done:
            self._synced[key] = synced
        handler = _ReportHandler(controller=self, kind=kind, scope=scope)
        self._informers[key] = group.create_task(
            self._informer(kind, path, handler, synced), name=f"informer-{path}"
        )
        return synced

    async def _informer(
        self,
        kind: kinds.ReportKind,
        path: str,
        handler: _ReportHandler,
        synced: asyncio.Event,
    ) -> None:
        try:
            await informer.informer(
                client=self._client,
                path=path,
                resource=kind.plural,
                handler=handler,
                metrics=self._metrics,
                page_size=REPORT_LIST_PAGE_SIZE,
                synced=synced,
            )
        except informer.ResourceGone:
            logger.warning("report_kind_gone", kind=kind.kind, path=path)
            synced.set()  # nothing left to sync; readiness must not wait for it
            self._available.pop(kind.kind, None)
            self._finder.forget(kind)

    async def _wait_initial_sync(self) -> None:
        """After the first sync of every informer: resolve what vanished while nobody led."""
        # Informers started meanwhile (a kind or namespace appearing) are waited for too.
        while self._entering or not all(event.is_set() for event in self._synced.values()):
            if self._entering:
                await asyncio.wait(list(self._entering.values()))
            await asyncio.gather(*(event.wait() for event in list(self._synced.values())))
        if self._discovery_failed:
            # Findings of the kinds nobody could list are not orphans: leave them Open until a
            # term that sees every report API (the next failover or restart).
            logger.warning("orphans_not_resolved", unknown=sorted(self._discovery_failed))
        else:
            self._ledger.orphans_after_sync()
        self._initial_sync_done = True
        self._metrics.informers_synced.set(1)
        logger.info("report_informers_synced", informers=len(self._synced), known=len(self._ledger))

    async def _resolver(self) -> NoReturn:
        while True:
            await asyncio.sleep(RESOLVE_INTERVAL)
            await self._retry_deferred()
            for resolve in self._ledger.due_resolutions():
                await self._put(
                    ResolveJob(
                        name=resolve.name,
                        namespace=resolve.namespace,
                        source=resolve.source,
                        resolved_at=self._wall_clock(),
                        term=self._term,
                    )
                )

    async def _retry_deferred(self) -> None:
        """Queue again, most severe first, the deferred Opens that some report still wants,
        while the budget has room for them (the writer checks each one again)."""
        if not self._deferred or self._budget is None:
            return
        waiting = sorted(
            self._deferred.values(), key=lambda job: job.finding.severity.rank, reverse=True
        )
        # Queued this tick, per namespace and in all: the budget counts them only once written.
        planned: dict[str, int] = {}
        queued = 0
        for job in waiting:
            if queued >= DEFERRED_PER_TICK:
                break
            severity, namespace = job.finding.severity, job.namespace
            if self._budget.room(severity, namespace) <= max(queued, planned.get(namespace, 0)):
                continue  # no room for it yet (its namespace, or the instance, is full)
            del self._deferred[job.finding.name]
            if self._ledger.is_wanted(job.finding.name):
                self._ledger.opened(job.finding, namespace)
                planned[namespace] = planned.get(namespace, 0) + 1
                queued += 1
                await self._put(replace(job, seen_at=self._wall_clock()))

    async def report_changed(
        self, kind: kinds.ReportKind, scope: Scope, report: dict[str, Any]
    ) -> None:
        """A report was listed, added or modified: reconcile its findings."""
        report.setdefault("apiVersion", kind.api_version)
        report.setdefault("kind", kind.kind)
        tool = kinds.report_source(kind.api_version)
        try:
            mapped = dispatch.map_report(report)
        except (Ignored, Rejected) as error:
            self._accounting.received(tool)
            self._accounting.rejected(tool, error.reason)
            self._metrics.reconciles.labels(kind.kind, "rejected").inc()
            return
        except Exception:
            # A bug met by one report costs that report only, not the informer and the term.
            logger.exception("report_mapping_failed", kind=kind.kind, scope=scope)
            self._accounting.received(tool)
            self._accounting.rejected(tool, INTERNAL_ERROR)
            self._metrics.reconciles.labels(kind.kind, "rejected").inc()
            return
        self._account_entries(tool, mapped)
        wanted = self._wanted_findings(report, mapped.findings)
        verdict = self._ledger.report_seen(
            scope=scope, origin=common.origin_of(report).key, findings=wanted
        )
        opened = {job.finding.name for job in verdict.opens}
        for finding, _ in wanted:
            if finding.name not in opened:
                self._accounting.deduplicated(finding.source)
        now = self._wall_clock()
        for open_ in verdict.opens:
            await self._put(
                OpenJob(
                    finding=open_.finding, namespace=open_.namespace, seen_at=now, term=self._term
                )
            )
        self._metrics.reconciles.labels(kind.kind, "ok").inc()

    def _account_entries(self, tool: str, mapped: common.ReportFindings) -> None:
        for finding in mapped.findings:
            self._accounting.received(finding.source)
        for skipped in mapped.skipped:
            self._accounting.received(tool)
            self._accounting.filtered(tool, skipped.reason)
        for rejected in mapped.rejected:
            self._accounting.received(tool)
            self._accounting.rejected(tool, rejected.reason)
        if mapped.duplicates:
            self._accounting.received(tool, mapped.duplicates)
            self._accounting.deduplicated(tool, mapped.duplicates)

    def _wanted_findings(
        self, report: dict[str, Any], findings: list[Finding]
    ) -> list[tuple[Finding, str]]:
        """Findings that pass the filters, each with the namespace its Observation goes to."""
        metadata = report.get("metadata") or {}
        default = str(metadata.get("namespace") or self._settings.pod_namespace)
        wanted = []
        for finding in findings:
            config = self._filters.config
            reason = rules.evaluate(config, finding)
            if reason is not None:
                DROP_LOG.dropped(config, finding, reason)
                self._accounting.filtered(finding.source, reason)
                continue
            wanted.append((finding, observation_namespace(finding, default_namespace=default)))
        return wanted

    def report_deleted(self, scope: Scope, kind: kinds.ReportKind, report: dict[str, Any]) -> None:
        metadata = report.get("metadata") or {}
        origin = common.origin_key(
            kind.api_version,
            kind.kind,
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
        )
        self._ledger.report_deleted(scope=scope, origin=origin)

    def listed(
        self, scope: Scope, kind: kinds.ReportKind, present: frozenset[tuple[str, str]]
    ) -> None:
        origins = {common.origin_key(kind.api_version, kind.kind, ns, name) for ns, name in present}
        self._ledger.listed(scope=scope, present=origins)


class _ReportHandler:
    """Adapts informer callbacks for one kind and scope to the controller."""

    def __init__(
        self, *, controller: ReportController, kind: kinds.ReportKind, scope: Scope
    ) -> None:
        self._controller = controller
        self._kind = kind
        self._scope = scope

    async def on_object(self, obj: dict[str, Any]) -> None:
        await self._controller.report_changed(self._kind, self._scope, obj)

    async def on_deleted(self, obj: dict[str, Any]) -> None:
        self._controller.report_deleted(self._scope, self._kind, obj)

    async def on_listed(self, present: frozenset[tuple[str, str]]) -> None:
        self._controller.listed(self._scope, self._kind, present)


def _namespace_of(path: str) -> str:
    """The namespace a collection path is scoped to, "" for a cluster-wide path."""
    if "/namespaces/" not in path:
        return ""
    return path.split("/namespaces/", 1)[1].split("/", 1)[0]
