"""The daemon: wires the pipeline, the HTTP listeners and leadership onto one uvloop loop.

Start-up: TLS, API connection, metrics, queue, dedup, probes and webhooks listening, then
writers, flusher and the leader elector (whose terms run informers, reconciliation and GC).
SIGTERM only sets an event; shutdown then runs in a fixed order: readiness false and new
requests 503, leader work stopped and the Lease released, SHUTDOWN_DELAY_SECONDS of 503s,
webhook listener closed after in-flight handlers finish, absorbed counts flushed, queue drained
into the writer within SHUTDOWN_GRACE_SECONDS, clients closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import uvloop
from prometheus_client import CollectorRegistry, ProcessCollector

from zenwatcher import __version__, logs
from zenwatcher.aiokits.ratelimit import TokenBucket
from zenwatcher.aiokits.tasks import create_guarded_task, stop_tasks
from zenwatcher.context import LeaderContext
from zenwatcher.http.app import make_webhook_app
from zenwatcher.http.probes import Readiness, make_probe_app
from zenwatcher.http.serving import Server, tls_context
from zenwatcher.http.webhooks import Admission
from zenwatcher.informers.filters import filter_watcher
from zenwatcher.kube import errors
from zenwatcher.kube.client import KubeClient
from zenwatcher.kube.config import KubeConfigError, load_connection
from zenwatcher.leader.elector import LeaderElector
from zenwatcher.leading import LeaderWork
from zenwatcher.mapping import falco
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline import filtering
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.audit_once import AuditJudgedOnce
from zenwatcher.pipeline.dedup import DedupCache, Flush
from zenwatcher.pipeline.intake import EventIntake, FilterState
from zenwatcher.pipeline.jobs import IncrementJob, WriteJob
from zenwatcher.pipeline.writer import Writer
from zenwatcher.records import Finding
from zenwatcher.settings import ConfigError, Settings

logger = structlog.get_logger()
API_CHECK_INTERVAL = 10.0


def main(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; the process exit code."""
    logs.configure(level=settings.log_level, log_format=settings.log_format)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings))


@dataclass
class Pipeline:
    """The event pipeline's shared parts."""

    queue: asyncio.Queue[WriteJob]
    dedup: DedupCache
    filters: FilterState
    accounting: Accounting
    writer: Writer
    admission: Admission = field(init=False)
    # Flushes taken from the cache but not yet queued when the flusher was stopped.
    unsent_flushes: list[Flush] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.admission = Admission(free_slots=self.free_slots, capacity=self.queue.maxsize)

    def free_slots(self) -> int:
        return self.queue.maxsize - self.queue.qsize()


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """The daemon's life; `stop` is set by signals (or by a test)."""
    stop = stop or _install_signal_handlers()
    log = logger.bind(pod=settings.pod_name, namespace=settings.pod_namespace)
    try:
        ssl_context = tls_context(settings.webhook)
    except ConfigError as error:
        log.error("webhook_tls_invalid", error=str(error))  # noqa: TRY400 - the message says it all
        return 2
    try:
        connection = await load_connection(settings.kubeconfig)
    except KubeConfigError as error:
        log.error("kube_config_invalid", error=str(error))  # noqa: TRY400 - the message says it all
        return 1
    client = KubeClient(connection=connection, timeout=settings.pipeline.api_timeout_seconds)
    # The Lease has a connection of its own, as client-go gives the elector its own client: a
    # renewal must never wait behind the writers' calls for a pooled connection.
    lease_client = KubeClient(
        connection=connection, timeout=settings.pipeline.api_timeout_seconds, max_connections=2
    )
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    metrics = Metrics(registry)
    if not settings.webhook.authenticated:
        # Only with WEBHOOK_ALLOW_UNAUTHENTICATED=true (`__main__` refuses otherwise).
        log.warning(
            "webhook_unauthenticated",
            message="the webhooks accept anyone who can reach them: set WEBHOOK_AUTH_TOKEN or "
            "WEBHOOK_TLS_CLIENT_CA_FILE",
        )
        metrics.webhook_unauthenticated.set(1)
    try:
        pipeline = _make_pipeline(settings, client, metrics)
    except filtering.FilterConfigError as error:
        log.error("filter_config_invalid", error=str(error))  # noqa: TRY400 - the message says it all
        await client.close()
        await lease_client.close()
        return 2
    readiness = Readiness()
    probe_server = Server(
        make_probe_app(registry=registry, readiness=readiness), port=settings.metrics_port
    )
    webhook_server = Server(
        make_webhook_app(
            settings=settings.webhook,
            metrics=metrics,
            falco_intake=_intake("falco", falco.map_falco_alert, settings, pipeline),
            audit_intake=_intake("audit", AuditJudgedOnce(), settings, pipeline),
            admission=pipeline.admission,
        ),
        port=settings.webhook.port,
        ssl_context=ssl_context,
        shutdown_timeout=settings.shutdown_grace_seconds / 2,
    )
    # Listening first: a port that cannot be bound is a configuration error, reported before
    # any work starts (nothing to unwind but the clients).
    listening = await _listen(
        [(probe_server, "METRICS_PORT"), (webhook_server, "WATCHER_PORT")], log=log
    )
    if not listening:
        await client.close()
        await lease_client.close()
        return 2
    tasks = _start_tasks(settings, client, pipeline, metrics, readiness)
    elector = _start_leadership(
        settings=settings,
        client=client,
        lease_client=lease_client,
        pipeline=pipeline,
        metrics=metrics,
        readiness=readiness,
        tasks=tasks,
    )
    log.info(
        "zen_watcher_started",
        version=__version__,
        webhook_port=settings.webhook.port,
        metrics_port=settings.metrics_port,
        watch_namespaces=list(settings.watch_namespaces) or "all",
    )
    await _wait_for_stop_or_crash(stop, tasks)
    # A root task that ended on its own is a failure: shut down in order, then exit non-zero.
    crashed = [name for name, task in tasks.items() if task.done()]
    if crashed:
        log.error("root_task_ended", tasks=crashed)
    await _shutdown(
        settings=settings,
        pipeline=pipeline,
        readiness=readiness,
        webhook_server=webhook_server,
        tasks=tasks,
        elector=elector,
        log=log,
    )
    await probe_server.stop()
    await client.close()
    await lease_client.close()
    log.info("zen_watcher_stopped")
    return 1 if crashed else 0


async def _listen(
    servers: list[tuple[Server, str]], *, log: structlog.typing.FilteringBoundLogger
) -> bool:
    """Start each server in order; on a port that cannot be bound, log which setting names
    it, stop those already started and answer False."""
    started: list[Server] = []
    for server, variable in servers:
        try:
            await server.start()
        except OSError as error:
            log.error(  # noqa: TRY400 - the message says it all
                "listen_failed", variable=variable, port=server.port, error=str(error)
            )
            for running in started:
                await running.stop()
            return False
        started.append(server)
    return True


def _make_pipeline(settings: Settings, client: KubeClient, metrics: Metrics) -> Pipeline:
    config = settings.pipeline
    filters = FilterState()
    if settings.filter_file:
        filters.config = filtering.load_filter_file(settings.filter_file)
    accounting = Accounting(metrics)
    queue: asyncio.Queue[WriteJob] = asyncio.Queue(maxsize=config.queue_size)
    metrics.queue_capacity.set(config.queue_size)
    metrics.queue_depth.set_function(queue.qsize)
    dedup = DedupCache(window_seconds=config.dedup_window_seconds, max_size=config.dedup_max_size)
    metrics.dedup_cache_size.set_function(dedup.__len__)
    metrics.dedup_pending.set_function(lambda: dedup.pending_repeats)
    writer = Writer(
        client=client,
        accounting=accounting,
        metrics=metrics,
        limiter=TokenBucket(rate=config.api_qps, burst=config.api_burst),
        ttl_seconds=settings.ttl_seconds,
        default_namespace=settings.pod_namespace,
    )
    return Pipeline(queue=queue, dedup=dedup, filters=filters, accounting=accounting, writer=writer)


def _intake(
    source: str, map_event: Callable[[Any], Finding], settings: Settings, pipeline: Pipeline
) -> EventIntake:
    return EventIntake(
        source=source,
        map_event=map_event,
        filters=pipeline.filters,
        dedup=pipeline.dedup,
        accounting=pipeline.accounting,
        enqueue=pipeline.queue.put_nowait,
        default_namespace=settings.pod_namespace,
        allowed_namespaces=frozenset(settings.watch_namespaces),
    )


def _start_tasks(
    settings: Settings,
    client: KubeClient,
    pipeline: Pipeline,
    metrics: Metrics,
    readiness: Readiness,
) -> dict[str, asyncio.Task[None]]:
    tasks = {
        f"writer-{index}": create_guarded_task(
            pipeline.writer.worker(pipeline.queue), name=f"writer-{index}"
        )
        for index in range(settings.pipeline.writer_workers)
    }
    tasks["flusher"] = create_guarded_task(
        flusher(pipeline, interval=min(1.0, settings.pipeline.dedup_window_seconds / 16)),
        name="flusher",
    )
    tasks["api-checker"] = create_guarded_task(api_checker(client, readiness), name="api-checker")
    if not settings.filter_file:
        tasks["filter-watcher"] = create_guarded_task(
            filter_watcher(
                client=client,
                namespace=settings.filter_configmap_namespace,
                name=settings.filter_configmap_name,
                state=pipeline.filters,
                metrics=metrics,
            ),
            name="filter-watcher",
        )
    return tasks


def _start_leadership(
    *,
    settings: Settings,
    client: KubeClient,
    lease_client: KubeClient,
    pipeline: Pipeline,
    metrics: Metrics,
    readiness: Readiness,
    tasks: dict[str, asyncio.Task[None]],
) -> LeaderElector:
    """The elector on every pod; its terms run the report controller and GC."""
    work = LeaderWork(
        LeaderContext(
            client=client,
            settings=settings,
            queue=pipeline.queue,
            filters=pipeline.filters,
            accounting=pipeline.accounting,
            metrics=metrics,
        )
    )
    readiness.leader_synced = work.synced
    elector = LeaderElector(
        client=lease_client,
        namespace=settings.pod_namespace,
        name=settings.leader.election_id,
        identity=settings.pod_name,
        lease_duration=settings.leader.lease_duration,
        renew_deadline=settings.leader.renew_deadline,
        retry_period=settings.leader.retry_period,
        metrics=metrics,
    )
    tasks["elector"] = create_guarded_task(elector.run(work.lead), name="elector")
    return elector


async def flusher(pipeline: Pipeline, *, interval: float) -> None:
    """Forever: hand due absorbed counts to the writer (about one write per finding per window)."""
    while True:
        await asyncio.sleep(interval)
        await enqueue_flushes(pipeline, pipeline.dedup.due_flushes())


async def enqueue_flushes(pipeline: Pipeline, flushes: list[Flush]) -> None:
    """Queue one status increment per flushed key (keys are `namespace/name`).

    The counts left the cache already: if this is cancelled while the queue is full, what was
    not queued goes to `pipeline.unsent_flushes`, which shutdown queues with the rest.
    """
    pending = collections.deque(flushes)
    try:
        while pending:
            flush = pending[0]
            finding = flush.payload
            assert isinstance(finding, Finding)
            namespace = flush.key.split("/", 1)[0]
            await pipeline.queue.put(
                IncrementJob(
                    finding=finding,
                    namespace=namespace,
                    count_delta=flush.count_delta,
                    last_seen=flush.last_seen,
                )
            )
            pending.popleft()
    finally:
        pipeline.unsent_flushes.extend(pending)


async def api_checker(client: KubeClient, readiness: Readiness) -> None:
    """Forever: is the API server answering? (an input of /readyz)."""
    while True:
        try:
            await client.request("GET", "/version", timeout=5.0)
        except (errors.ApiError, errors.TransportError) as error:
            if readiness.api_reachable:
                logger.warning("api_unreachable", error=str(error))
            readiness.api_reachable = False
        else:
            readiness.api_reachable = True
        await asyncio.sleep(API_CHECK_INTERVAL)


async def _wait_for_stop_or_crash(
    stop: asyncio.Event, tasks: dict[str, asyncio.Task[None]]
) -> None:
    """Wait for the stop signal; a root task that ends early is a failure, so stop then too."""
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stopper, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopper


async def _shutdown(
    *,
    settings: Settings,
    pipeline: Pipeline,
    readiness: Readiness,
    webhook_server: Server,
    tasks: dict[str, asyncio.Task[None]],
    elector: LeaderElector,
    log: structlog.typing.FilteringBoundLogger,
) -> None:
    """Readiness off and 503s; leader work stopped and the Lease released; after the delay the
    listener closed, counts flushed, the queue drained; the rest cancelled — in that order.

    The Lease goes first: the term's queued report writes are dropped when it ends (the next
    leader reconciles from its own view), so nothing of the leader's is left to drain, and a
    follower takes over within about a retry period instead of after the whole drain. The
    queue that is drained holds the webhooks' findings, which need no leadership.
    """
    readiness.draining = True
    pipeline.admission.draining = True
    log.info("shutdown_started", queued=pipeline.queue.qsize())
    await stop_tasks([tasks.pop("elector")])
    await elector.release()
    # The Service drops an unready pod only a moment later; until then clients still connect
    # here, and a 503 with Retry-After tells them to retry where a closed port would not.
    # The writers keep draining meanwhile.
    await asyncio.sleep(settings.shutdown_delay_seconds)
    deadline = time.monotonic() + settings.shutdown_grace_seconds
    await webhook_server.stop()
    await stop_tasks([tasks.pop("flusher")])
    unsent, pipeline.unsent_flushes = pipeline.unsent_flushes, []
    queued = await _within(deadline, enqueue_flushes(pipeline, unsent + pipeline.dedup.drain()))
    drained = queued and await _within(deadline, pipeline.queue.join())
    log.info(
        "shutdown_drained",
        complete=drained,
        left=pipeline.queue.qsize(),
        # Repeats the grace period left no room to queue: counted here, since nothing else will.
        repeats_not_written=sum(flush.count_delta for flush in pipeline.unsent_flushes),
    )
    await stop_tasks(list(tasks.values()))


async def _within(deadline: float, awaitable: Awaitable[None]) -> bool:
    try:
        await asyncio.wait_for(awaitable, timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return False
    return True


def _install_signal_handlers() -> asyncio.Event:
    """SIGTERM/SIGINT set the stop event; a second one exits at once (uvicorn's habit)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def handle(signum: int) -> None:
        if stop.is_set():
            logger.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(1)
        logger.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, handle, signum)
    return stop
