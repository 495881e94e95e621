"""The garbage collector's settings for a daemon whose requests allocate in bursts.

Reference counting frees almost everything the webhooks allocate; the cyclic collector only
has to find cycles. At its defaults it does far more: it traces young objects every 700
allocations, and a 400-event audit batch is some 10,000 objects that live through the request,
so each was traced by a dozen young passes, promoted, and then traced again by full passes over
the whole heap, start-up included. So, once the daemon has started:
- what start-up built (imports, settings, clients, the app) is frozen: it is never garbage, and
  full passes no longer walk it;
- young passes run every GEN0_THRESHOLD allocations, past the size of one request.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 10_000


def settle_after_start() -> None:
    """Collect once, freeze what is left, and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, older, oldest)
