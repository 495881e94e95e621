"""Wakes a waiting candidate as soon as the Lease it waits for is released or deleted, and
shows it every renewal as it happens.

client-go's candidates only poll, once a retry period; after a graceful release a follower
therefore leads up to a whole (jittered) retry period later, and since a holder's lease expires
a lease duration after the candidate *saw* its last renewal, a crashed leader stands for up to
a retry period more than its lease. Here a candidate also watches its one Lease (a field
selector on its name) from the resourceVersion it last read: it tries again at once when the
holder is cleared or the Lease is gone, and notes each change when the watch delivers it, so
the expiry counts from the renewal itself. The watch decides nothing: the candidate still
reads the Lease and writes it under its resourceVersion as before, only sooner. Where the watch
cannot run (RBAC without `watch` on leases, a proxy that breaks streams) the candidate simply
polls as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import structlog

from zenwatcher.kube import errors, leases, watching
from zenwatcher.kube.client import KubeClient

logger = structlog.get_logger()

# A follower can wait for hours; the server ends each watch after this many seconds (spread so
# that the replicas' watches do not end in step) and the next one starts from a fresh read.
SERVER_TIMEOUT_RANGE = (240, 360)
_RANDOM = random.Random()  # noqa: S311 - spreads retries; not a secret


def named_lease_path(namespace: str, name: str) -> str:
    """The Leases of `namespace` narrowed to `name`: a watch of one object."""
    selector = quote(f"metadata.name={name}", safe="")
    return f"{leases.collection_path(namespace)}?fieldSelector={selector}"


def is_release(event: watching.WatchEvent) -> bool:
    """Did this event leave the Lease free to take: deleted, or no holder named?"""
    if event.type == "DELETED":
        return True
    if event.type == "BOOKMARK":
        return False
    spec = event.object.get("spec") or {}
    return not spec.get("holderIdentity")


async def watch_releases(
    *,
    client: KubeClient,
    namespace: str,
    name: str,
    resource_version: Callable[[], str],
    wake: Callable[[], None],
    observe: Callable[[dict[str, Any]], None],
    retry_period: float,
) -> None:
    """Call `observe(lease)` on every version of the Lease the watch delivers and `wake()` on
    every release, until cancelled (or refused by RBAC).

    Each watch starts from `resource_version()`: the version the candidate last read, so only
    what happened after that read can wake it.
    """
    log = logger.bind(lease=f"{namespace}/{name}")
    path = named_lease_path(namespace, name)
    resume_from = ""  # after a normal end: the last version this watch saw
    while True:
        version = resume_from or resource_version()
        resume_from = ""
        started, seen = time.monotonic(), 0
        if version:
            try:
                stream = watching.watch_stream(
                    client,
                    path=path,
                    resource_version=version,
                    server_timeout=watching.watch_timeout(SERVER_TIMEOUT_RANGE),
                    inactivity_timeout=watching.DEFAULT_INACTIVITY_TIMEOUT,
                )
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        seen += 1
                        version = event.resource_version or version
                        if event.type in ("ADDED", "MODIFIED"):
                            observe(event.object)
                        if is_release(event):
                            log.info("lease_release_seen", type=event.type)
                            wake()
            except errors.Forbidden as error:
                log.warning("lease_watch_refused", error=str(error))
                return
            except (errors.ApiError, errors.TransportError) as error:
                # 410 included: the next watch starts from the candidate's newer read.
                log.debug("lease_watch_restarted", error=str(error))
            else:
                if seen or time.monotonic() - started >= watching.SHORT_WATCH_SECONDS:
                    resume_from = version  # the server's timeout: watch on at once
                    continue
        await asyncio.sleep(retry_period * (1.0 + _RANDOM.random()))
