"""The Observation resource as it is stored: names, labels, the object a create sends, the status
transitions (repeat, reopen), what reconciliation reads back, and when one expires.

Pure: every function takes the object (or the finding) and the time it is given; no I/O
(docs/design.md §2, §3).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from zenwatcher import settings
from zenwatcher.finding import Finding
from zenwatcher.mapping.timestamps import parse_time

GROUP = "zen.kube-zen.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Observation"
PLURAL = "observations"

LABEL_SOURCE = f"{GROUP}/source"
LABEL_SEVERITY = f"{GROUP}/severity"
LABEL_CATEGORY = f"{GROUP}/category"
LABEL_EVENT_TYPE = f"{GROUP}/event-type"
LABEL_ORIGIN_UID = f"{GROUP}/origin-uid"
LABEL_ORIGIN = f"{GROUP}/origin"
# Set by each status write to an id of its own, so a writer whose answer was lost can tell its
# write from another's that produced the same status.
WRITE_ID_ANNOTATION = f"{GROUP}/write-id"
# open or resolved (PhaseLabel): lets a label selector, and the leader's metadata-only watch,
# tell open findings from resolved ones without reading status.
LABEL_PHASE = f"{GROUP}/phase"

# The CRD's limits on spec.title and spec.message (characters), and ours on spec.details: an
# Observation stays far below etcd's object limit whatever a tool sends.
MAX_TITLE_CHARS = 1024
MAX_MESSAGE_CHARS = 32768
MAX_DETAILS_BYTES = 256 * 1024
MAX_DETAIL_STRING_CHARS = 4096
MAX_DETAIL_LIST_ITEMS = 100
DETAILS_TRUNCATED = "truncated"  # a details key set when some of it was cut


class Phase(enum.StrEnum):
    """Lifecycle of a report-derived finding."""

    OPEN = "Open"
    RESOLVED = "Resolved"


class PhaseLabel(enum.StrEnum):
    """The phase label's values: every finding is open until resolved (report findings) or
    until it expires (event findings, which GC deletes)."""

    OPEN = "open"
    RESOLVED = "resolved"


_PHASE_VALUES = frozenset(phase.value for phase in PhaseLabel)


def phase_labels(phase: PhaseLabel) -> dict[str, str]:
    """The labels a status transition merges into metadata.labels."""
    return {LABEL_PHASE: phase.value}


def phase_label_of(labels: Mapping[str, str]) -> PhaseLabel:
    """The phase an Observation's labels say. One written before the label existed is open
    when it is an event finding, and for a report finding not open (docs/design.md §2: no
    phase is not Open; the report controller reopens it, writing the label)."""
    value = labels.get(LABEL_PHASE)
    if value in _PHASE_VALUES:
        return PhaseLabel(value)
    return PhaseLabel.RESOLVED if LABEL_ORIGIN in labels else PhaseLabel.OPEN


def observation_namespace(finding: Finding, *, default_namespace: str) -> str:
    """Where the Observation lives: the resource's namespace, else the watcher's own."""
    return finding.namespace or default_namespace


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with a `Z` and whole seconds, as Kubernetes writes times."""
    # isoformat pads the year to four digits; strftime's %Y does not (year 5 -> "5-…").
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def labels_for(finding: Finding) -> dict[str, str]:
    """The labels every Observation carries; report-derived ones also name their origin."""
    labels = {
        LABEL_SOURCE: finding.source,
        LABEL_SEVERITY: finding.severity.value,
        LABEL_CATEGORY: finding.category.value,
        LABEL_EVENT_TYPE: label_value(finding.event_type),
        LABEL_PHASE: PhaseLabel.OPEN.value,
    }
    if finding.origin is not None:
        labels[LABEL_ORIGIN_UID] = label_value(finding.origin.uid)
        labels[LABEL_ORIGIN] = finding.origin.key
    return labels


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_details(details: dict[str, Any]) -> dict[str, Any]:
    """Details small enough to store: as they are when they fit in MAX_DETAILS_BYTES, else with
    long strings clipped, else only their keys. A tool's oversized field must not cost the
    finding (etcd refuses objects over about 1.5 MiB; the API server answers that as a 500)."""
    if len(orjson.dumps(details)) <= MAX_DETAILS_BYTES:
        return details
    clipped = _clip_strings(details)
    if len(orjson.dumps(clipped)) <= MAX_DETAILS_BYTES:
        return {**clipped, DETAILS_TRUNCATED: True}
    return {DETAILS_TRUNCATED: True, "keys": sorted(details)[:100]}


def _clip_strings(value: Any) -> Any:
    if isinstance(value, str):
        return clip(value, MAX_DETAIL_STRING_CHARS)
    if isinstance(value, dict):
        return {key: _clip_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clip_strings(item) for item in value[:MAX_DETAIL_LIST_ITEMS]]
    return value


def label_value(text: str) -> str:
    """Clamp to the 63-character label limit, ending on an alphanumeric."""
    return text[:63].rstrip("-_.")


def to_observation(
    finding: Finding,
    *,
    namespace: str,
    now: datetime,
    ttl_seconds: int,
    count: int = 1,
    last_seen: datetime | None = None,
) -> dict[str, Any]:
    """The full Observation object for a create: metadata, spec and status.

    `detectedAt`/`firstSeen` use the tool's own time when it gave one, else `now`.
    """
    detected = finding.detected_at or now
    spec: dict[str, Any] = {
        "source": finding.source,
        "category": finding.category.value,
        "severity": finding.severity.value,
        "eventType": finding.event_type,
        "title": clip(finding.title, MAX_TITLE_CHARS),
        "message": clip(finding.message, MAX_MESSAGE_CHARS),
        "details": bounded_details(dict(finding.details)),
        "fingerprint": finding.fingerprint,
        "detectedAt": rfc3339(detected),
        "ttlSecondsAfterCreation": ttl_seconds,
    }
    if finding.resource is not None and finding.resource.to_spec():
        spec["resource"] = finding.resource.to_spec()
    status: dict[str, Any] = {
        "count": count,
        "firstSeen": rfc3339(detected),
        "lastSeen": rfc3339(last_seen or now),
    }
    if finding.origin is not None:
        status["phase"] = Phase.OPEN.value
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": finding.name,
            "namespace": namespace,
            "labels": labels_for(finding),
        },
        "spec": spec,
        "status": status,
    }


# Status transitions.


def merged_status(current: dict[str, Any], *, delta: int, seen: datetime) -> dict[str, Any]:
    """The status after adding `delta` occurrences, the latest of them at `seen`."""
    status = current.get("status") or {}
    spec = current.get("spec") or {}
    last_seen = parse_time(status.get("lastSeen"))
    latest = seen if last_seen is None or seen > last_seen else last_seen
    merged: dict[str, Any] = {
        "count": int(status.get("count") or 0) + delta,
        "firstSeen": status.get("firstSeen") or spec.get("detectedAt") or rfc3339(seen),
        "lastSeen": rfc3339(latest.astimezone(UTC)),
    }
    return merged


def reopened_status(observation: dict[str, Any], *, seen: datetime) -> dict[str, Any] | None:
    """Open again with one more occurrence; None when it is Open already (no write)."""
    status = observation.get("status") or {}
    if status.get("phase") == Phase.OPEN.value:
        return None
    reopened = merged_status(observation, delta=1, seen=seen)
    reopened["phase"] = Phase.OPEN.value
    reopened["resolvedAt"] = None
    return reopened


# What reconciliation reads back.


@dataclass(frozen=True, slots=True)
class Existing:
    """What the ledger knows of one Observation."""

    namespace: str
    phase: Phase
    source: str


def existing_from(item: dict[str, Any]) -> tuple[str, Existing]:
    """An Observation's name and what reconciliation needs of it.

    Open only when its status says so: one created whose status write never happened (the
    term that created it ended first) is not, so the ledger opens it again (the writer's
    create meets it as a 409 and writes its status).
    """
    metadata = item.get("metadata") or {}
    status = item.get("status") or {}
    phase = Phase.OPEN if status.get("phase") == "Open" else Phase.RESOLVED
    existing = Existing(
        namespace=str(metadata.get("namespace", "")),
        phase=phase,
        source=str((item.get("spec") or {}).get("source", "")),
    )
    return str(metadata.get("name", "")), existing


# Expiry (GC).

# gc_deleted{reason}: which time the TTL was measured from.
REASON_LAST_SEEN = "ttl_last_seen"
REASON_CREATED = "ttl_created"
REASON_RESOLVED = "ttl_resolved"
# The expiry of what never expires (an Open report finding): later than any `now`.
NEVER = datetime.max.replace(tzinfo=UTC)


def expiry_of(observation: Mapping[str, Any], *, default_ttl: int) -> datetime | None:
    """When the Observation expires; None when its times are missing or unparseable, and
    `NEVER` for an Open report finding."""
    found = expiry_and_reason(observation, default_ttl=default_ttl)
    return found[0] if found is not None else None


def expired_reason(
    observation: Mapping[str, Any], *, now: datetime, default_ttl: int
) -> str | None:
    """The `ttl_*` reason when expired at `now`; None when not (or times are bad)."""
    found = expiry_and_reason(observation, default_ttl=default_ttl)
    if found is None or found[0] > now:
        return None
    return found[1]


def is_open_report_finding(observation: Mapping[str, Any]) -> bool:
    """Report-derived (origin label) and Open: the report controller owns its life. One whose
    status was never written expires like any other, from its creation."""
    metadata = observation.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return (
        isinstance(labels, Mapping)
        and LABEL_ORIGIN in labels
        and field_of(observation, "status", "phase") == Phase.OPEN
    )


def ttl_of(observation: Mapping[str, Any], *, default_ttl: int) -> int:
    """spec.ttlSecondsAfterCreation, else `default_ttl`; clamped to [60 s, 1 year] like settings."""
    value = field_of(observation, "spec", "ttlSecondsAfterCreation")
    if isinstance(value, bool) or not isinstance(value, int | float):
        value = default_ttl
    return max(settings.TTL_MIN_SECONDS, min(settings.TTL_MAX_SECONDS, int(value)))


def expiry_and_reason(
    observation: Mapping[str, Any], *, default_ttl: int
) -> tuple[datetime, str] | None:
    """When the Observation expires and the `ttl_*` reason naming the time it counts from;
    None when its times are missing or unparseable."""
    if is_open_report_finding(observation):
        return NEVER, ""
    # A lastSeen that is present but unparseable does not fall back to creation: that could
    # delete a finding seen a minute ago, so it is never expired (and counted by the caller).
    last_seen = field_of(observation, "status", "lastSeen")
    resolved_at = field_of(observation, "status", "resolvedAt")
    phase = field_of(observation, "status", "phase")
    if resolved_at not in (None, "") and phase == Phase.RESOLVED:
        base, reason = parse_time(resolved_at), REASON_RESOLVED
    elif last_seen not in (None, ""):
        base, reason = parse_time(last_seen), REASON_LAST_SEEN
    else:
        base = parse_time(field_of(observation, "metadata", "creationTimestamp"))
        reason = REASON_CREATED
    if base is None:
        return None
    return base + timedelta(seconds=ttl_of(observation, default_ttl=default_ttl)), reason


def field_of(observation: Mapping[str, Any], section: str, key: str) -> Any:
    """`observation[section][key]`, or None when either is missing."""
    part = observation.get(section)
    return part.get(key) if isinstance(part, Mapping) else None
