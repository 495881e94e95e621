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
import contextlib
import os
import signal
import time
from collections.abc import Awaitable

import structlog
import uvloop
from prometheus_client import CollectorRegistry, ProcessCollector

from zenwatcher import __version__, heap, logs
from zenwatcher.election.elector import LeaderElector
from zenwatcher.filters import rules
from zenwatcher.filters.reload import filter_watcher
from zenwatcher.http.app import make_webhook_handler
from zenwatcher.http.probes import Readiness, make_probe_app
from zenwatcher.http.serving import Server, tls_context
from zenwatcher.http.webhooks import Admission
from zenwatcher.kube import errors
from zenwatcher.kube.client import KubeClient
from zenwatcher.kube.config import KubeConfigError, load_connection
from zenwatcher.leader.context import LeaderContext
from zenwatcher.leader.term import LeaderWork
from zenwatcher.loop_lag import sample_loop_lag
from zenwatcher.metrics import Metrics
from zenwatcher.metrics.findings import FindingsMode
from zenwatcher.pipeline.assembly import Pipeline, make_intakes, make_pipeline
from zenwatcher.scope import NamespaceScope
from zenwatcher.settings import ConfigError, Settings
from zenwatcher.tasks import create_guarded_task, stop_tasks

logger = structlog.get_logger()
API_CHECK_INTERVAL = 10.0
API_CHECK_TIMEOUT = 5.0


def main(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; the process exit code."""
    logs.configure(level=settings.log_level, log_format=settings.log_format)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings))


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
    metrics = Metrics(
        registry,
        findings_mode=FindingsMode(settings.findings_metrics),
        findings_max_series=settings.findings_metrics_max_series,
    )
    if not settings.webhook.authenticated:
        # Only with WEBHOOK_ALLOW_UNAUTHENTICATED=true (`__main__` refuses otherwise).
        log.warning(
            "webhook_unauthenticated",
            message="the webhooks accept anyone who can reach them: set WEBHOOK_AUTH_TOKEN or "
            "WEBHOOK_TLS_CLIENT_CA_FILE",
        )
        metrics.webhook_unauthenticated.set(1)
    try:
        pipeline = make_pipeline(
            settings, client, metrics, scope=NamespaceScope.from_settings(settings)
        )
    except rules.FilterConfigError as error:
        log.error("filter_config_invalid", error=str(error))  # noqa: TRY400 - the message says it all
        await client.close()
        await lease_client.close()
        return 2
    admission = Admission(free_slots=pipeline.free_slots, capacity=pipeline.queue.maxsize)
    readiness = Readiness(scope_synced=pipeline.scope.synced.is_set)
    probe_server = Server(
        make_probe_app(registry=registry, readiness=readiness), port=settings.metrics_port
    )
    webhook_server = Server(
        make_webhook_handler(
            settings=settings.webhook,
            metrics=metrics,
            intakes=make_intakes(settings, pipeline),
            admission=admission,
        ),
        port=settings.webhook.port,
        ssl_context=ssl_context,
        shutdown_timeout=settings.shutdown_grace_seconds / 2,
        max_body_bytes=settings.webhook.max_body_bytes,
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
    heap.settle_after_start()
    log.info(
        "zen_watcher_started",
        version=__version__,
        webhook_port=settings.webhook.port,
        metrics_port=settings.metrics_port,
        watch_namespaces=list(settings.watch_namespaces) or "all",
        watch_namespace_selector=settings.watch_namespace_selector or None,
    )
    await _wait_for_stop_or_crash(stop, tasks)
    # A root task that ended on its own is a failure: shut down in order, then exit non-zero.
    crashed = [name for name, task in tasks.items() if task.done()]
    if crashed:
        log.error("root_task_ended", tasks=crashed)
    await _shutdown(
        settings=settings,
        pipeline=pipeline,
        admission=admission,
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
        pipeline.flusher.run(interval=min(1.0, settings.pipeline.dedup_window_seconds / 16)),
        name="flusher",
    )
    tasks["api-checker"] = create_guarded_task(api_checker(client, readiness), name="api-checker")
    tasks["loop-lag"] = create_guarded_task(
        sample_loop_lag(metrics.event_loop_lag.observe), name="loop-lag"
    )
    if pipeline.scope.dynamic:
        tasks["namespace-scope"] = create_guarded_task(
            pipeline.scope.run(client=client, metrics=metrics), name="namespace-scope"
        )
    if pipeline.budget.enabled:
        tasks["budget"] = create_guarded_task(pipeline.budget.run(), name="budget")
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
            budget=pipeline.budget,
            scope=pipeline.scope,
        )
    )
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

    def leader_synced() -> bool:
        # Before its first attempt at the Lease a pod may be the leader; followers are not
        # held back by the leader's sync.
        return elector.has_tried and (not elector.is_leader or work.synced())

    readiness.leader_synced = leader_synced
    return elector


async def api_checker(client: KubeClient, readiness: Readiness) -> None:
    """Forever: is the API server answering? (an input of /readyz)."""
    while True:
        try:
            await client.request("GET", "/version", timeout=API_CHECK_TIMEOUT)
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
    admission: Admission,
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
    admission.draining = True
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
    flusher = pipeline.flusher
    queued = await _within(
        deadline, flusher.enqueue(flusher.take_unsent() + pipeline.dedup.drain())
    )
    drained = queued and await _within(deadline, pipeline.queue.join())
    log.info(
        "shutdown_drained",
        complete=drained,
        left=pipeline.queue.qsize(),
        # Repeats the grace period left no room to queue: counted here, since nothing else will.
        repeats_not_written=sum(flush.count_delta for flush in flusher.unsent),
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
