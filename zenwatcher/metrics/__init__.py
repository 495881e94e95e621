"""Every Prometheus metric zen-watcher exposes (`families`), on counters made for one event loop
(`counters`)."""

from zenwatcher.metrics.families import Bucket, Metrics

__all__ = ["Bucket", "Metrics"]
