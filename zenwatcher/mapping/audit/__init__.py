"""Kubernetes API-server audit events: the webhook body split into Events (`events`), each read
once into a type-checked `Request` (`request`, `fields`), judged by the rule table (`rules`,
which looks inside the objects it carries with `objects`). This face hands on what the daemon
uses."""

from zenwatcher.mapping.audit.events import (
    SOURCE,
    STREAMING_AT_ANY,
    audit_id,
    is_streaming,
    judge_audit_event,
    map_audit_event,
    split_audit_body,
)

__all__ = [
    "SOURCE",
    "STREAMING_AT_ANY",
    "audit_id",
    "is_streaming",
    "judge_audit_event",
    "map_audit_event",
    "split_audit_body",
]
