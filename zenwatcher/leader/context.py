"""The long-lived parts the daemon builds once and its leader work uses in every term."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from zenwatcher.filters.state import FilterState
from zenwatcher.kube.client import KubeClient
from zenwatcher.metrics import Metrics
from zenwatcher.pipeline.accounting import Accounting
from zenwatcher.pipeline.budget import Budget
from zenwatcher.pipeline.jobs import WriteJob
from zenwatcher.scope import NamespaceScope
from zenwatcher.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderContext:
    """What the report controller and GC share: API client, settings, the write queue, the
    filters in force, and the accounting and metrics they report to."""

    client: KubeClient
    settings: Settings
    queue: asyncio.Queue[WriteJob]
    filters: FilterState
    accounting: Accounting
    metrics: Metrics
    budget: Budget | None = None
    scope: NamespaceScope | None = None  # None: the static scope of the settings
