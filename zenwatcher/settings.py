"""Every setting zen-watcher reads, from the environment, in one place.

`Settings.from_env(os.environ)` is the only reader of the environment. A bad value raises one
`ConfigError` naming the variable, the value and what is allowed; `cli.main` turns it into
exit code 2. Tests vary settings with `dataclasses.replace`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from zenwatcher import selector

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "console")
FINDINGS_MODES = ("off", "simple", "detailed")  # metrics.findings.FindingsMode
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
TTL_MIN_SECONDS = 60
TTL_MAX_SECONDS = 365 * 86400
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A setting with a value zen-watcher cannot use."""

    def __init__(self, variable: str, value: str, allowed: str) -> None:
        super().__init__(f"invalid {variable}={value!r}: {allowed}")
        self.variable = variable
        self.value = value


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderSettings:
    """Lease-based leader election (docs/design.md §7); durations in seconds."""

    election_id: str = "zen-watcher-leader-election"  # LEADER_ELECTION_ID: the Lease's name
    lease_duration: float = 15.0  # LEADER_LEASE_DURATION: how long a lease is honoured
    renew_deadline: float = 10.0  # LEADER_RENEW_DEADLINE: leader gives up if not renewed by then
    retry_period: float = 2.0  # LEADER_RETRY_PERIOD: between acquire/renew attempts


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSettings:
    """The webhook listener on every pod (docs/design.md §6)."""

    port: int = 8080  # WATCHER_PORT
    auth_token: str = ""  # WEBHOOK_AUTH_TOKEN: Bearer token; empty = none
    max_body_bytes: int = 16 * 1024 * 1024  # WEBHOOK_MAX_BODY_BYTES: a full audit batch fits
    tls_cert_file: str = ""  # WEBHOOK_TLS_CERT_FILE: serve HTTPS with this certificate
    tls_key_file: str = ""  # WEBHOOK_TLS_KEY_FILE
    tls_client_ca_file: str = ""  # WEBHOOK_TLS_CLIENT_CA_FILE: verify client certificates
    allowed_cidrs: tuple[IpNetwork, ...] = ()  # WEBHOOK_ALLOWED_CIDRS: empty = any peer
    trusted_proxies: tuple[IpNetwork, ...] = ()  # WEBHOOK_TRUSTED_PROXIES: X-Forwarded-For from
    # WEBHOOK_ALLOW_UNAUTHENTICATED: run with neither a token nor a client CA (anyone may post)
    allow_unauthenticated: bool = False

    @property
    def authenticated(self) -> bool:
        """Every caller must present the token or a certificate signed by the client CA."""
        return bool(self.auth_token or self.tls_client_ca_file)

    def require_authentication(self) -> None:
        """Refuse to serve open webhooks unless that was asked for explicitly: anyone who can
        reach the port could otherwise forge alerts and fill etcd with Observations."""
        if not self.authenticated and not self.allow_unauthenticated:
            raise ConfigError(
                "WEBHOOK_AUTH_TOKEN",
                self.auth_token,
                "the webhooks need a credential: set WEBHOOK_AUTH_TOKEN (a bearer token) or "
                "WEBHOOK_TLS_CLIENT_CA_FILE (client certificates, with WEBHOOK_TLS_CERT_FILE and "
                "WEBHOOK_TLS_KEY_FILE), or WEBHOOK_ALLOW_UNAUTHENTICATED=true to accept anyone",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSettings:
    """Queue, dedup and writer (docs/design.md §3)."""

    queue_size: int = 10000  # QUEUE_SIZE: findings waiting for the writer; full = 503
    dedup_window_seconds: float = 60.0  # DEDUP_WINDOW_SECONDS
    dedup_max_size: int = 10000  # DEDUP_MAX_SIZE: entries in the TTL-LRU
    writer_workers: int = 8  # WRITER_WORKERS: concurrent API writes
    # API_QPS: a client-side limit on the writer's calls per second (create, get, patch; a new
    # Observation is one); 0 = none. None by default: the API server's Priority and Fairness
    # is the limit (its 429s are honoured), and WRITER_WORKERS bounds the calls in flight, as
    # SIG API Machinery recommends and controller-runtime does (docs/design.md §3.2).
    api_qps: float = 0.0
    # API_BURST: calls saved up above API_QPS when it is set.
    api_burst: int = 1000
    api_timeout_seconds: float = 10.0  # API_TIMEOUT_SECONDS: bound on every API call
    # OBSERVATION_BUDGET: Observations this instance's scope may hold (about 4 KiB of etcd
    # each: 100,000 is a fifth of etcd's default 2 GiB quota); 0 = no limit.
    budget_total: int = 100_000
    # OBSERVATION_BUDGET_PER_NAMESPACE: the same for any one namespace; 0 = no limit.
    budget_per_namespace: int = 25_000


@dataclass(frozen=True, slots=True, kw_only=True)
class GcSettings:
    """Garbage collection of expired Observations (leader only)."""

    interval_seconds: float = 3600.0  # GC_INTERVAL: Go-style duration ("1h") or seconds
    delete_rate: float = 20.0  # GC_DELETE_RATE: deletes per second at most
    page_size: int = 500  # GC_PAGE_SIZE: list page size


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """All settings; see README for the table of variables."""

    pod_namespace: str = "zen-system"  # POD_NAMESPACE
    pod_name: str = "zen-watcher"  # POD_NAME: leader-election identity
    watch_namespaces: tuple[str, ...] = ()  # WATCH_NAMESPACE: comma-separated; empty = all
    # WATCH_NAMESPACE_SELECTOR: a label selector over Namespaces instead of the list; "" = none
    watch_namespace_selector: str = ""
    watch_cluster_reports: bool = True  # WATCH_CLUSTER_REPORTS: default true only when unsharded
    # WATCH_REPORTS: false = the leader runs GC only, no report informers (a webhook tier)
    watch_reports: bool = True
    report_resolve_grace_seconds: float = 30.0  # REPORT_RESOLVE_GRACE_SECONDS: churn absorber
    metrics_port: int = 9090  # METRICS_PORT
    log_level: str = "info"  # LOG_LEVEL
    log_format: str = "json"  # LOG_FORMAT: json | console
    ttl_seconds: int = 7 * 86400  # OBSERVATION_TTL_SECONDS, else OBSERVATION_TTL_DAYS (7)
    filter_configmap_name: str = "zen-watcher-filter"  # FILTER_CONFIGMAP_NAME
    filter_configmap_namespace: str = ""  # FILTER_CONFIGMAP_NAMESPACE: default POD_NAMESPACE
    filter_file: str = ""  # FILTER_FILE: filter.json on disk instead of the ConfigMap
    shutdown_grace_seconds: float = 25.0  # SHUTDOWN_GRACE_SECONDS: drain deadline on SIGTERM
    # SHUTDOWN_DELAY_SECONDS: after SIGTERM, answer 503 this long before closing the listener
    shutdown_delay_seconds: float = 3.0
    kubeconfig: str = ""  # KUBECONFIG: empty = in-cluster, else ~/.kube/config
    # FINDINGS_METRICS: labels of the new-findings-by-rule counter: off | simple | detailed
    findings_metrics: str = "simple"
    # FINDINGS_METRICS_MAX_SERIES: its label sets at most; more go to rule="_overflow"
    findings_metrics_max_series: int = 2000
    leader: LeaderSettings = field(default_factory=LeaderSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    gc: GcSettings = field(default_factory=GcSettings)

    @property
    def observation_namespaces(self) -> tuple[str, ...]:
        """Where this instance's Observations live, so where GC and reconciliation look: the
        watched namespaces plus our own (where findings without a namespace go); empty = the
        whole cluster. With a selector the set changes at run time: `scope.NamespaceScope`."""
        if not self.watch_namespaces:
            return ()
        return tuple(dict.fromkeys((*self.watch_namespaces, self.pod_namespace)))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables; raise ConfigError on the first bad one."""
        reader = _Reader(env)
        pod_namespace = reader.get("POD_NAMESPACE", "zen-system", _dns_label)
        no_namespaces: tuple[str, ...] = ()
        watch_namespaces = reader.get("WATCH_NAMESPACE", no_namespaces, _namespace_list)
        namespace_selector = reader.get("WATCH_NAMESPACE_SELECTOR", "", _label_selector)
        if watch_namespaces and namespace_selector:
            raise ConfigError(
                "WATCH_NAMESPACE_SELECTOR",
                namespace_selector,
                "WATCH_NAMESPACE and WATCH_NAMESPACE_SELECTOR are both set; set only one "
                "(a list of namespaces, or a label selector over Namespaces)",
            )
        sharded = bool(watch_namespaces or namespace_selector)
        settings = cls(
            pod_namespace=pod_namespace,
            pod_name=reader.get("POD_NAME", "zen-watcher", _any),
            watch_namespaces=watch_namespaces,
            watch_namespace_selector=namespace_selector,
            watch_cluster_reports=reader.get("WATCH_CLUSTER_REPORTS", not sharded, _boolean),
            watch_reports=reader.get("WATCH_REPORTS", True, _boolean),
            report_resolve_grace_seconds=reader.get(
                "REPORT_RESOLVE_GRACE_SECONDS", 30.0, _non_negative_duration
            ),
            metrics_port=reader.get("METRICS_PORT", 9090, _port),
            log_level=reader.get("LOG_LEVEL", "info", _choice(LOG_LEVELS)),
            log_format=reader.get("LOG_FORMAT", "json", _choice(LOG_FORMATS)),
            ttl_seconds=_ttl(reader),
            filter_configmap_name=reader.get(
                "FILTER_CONFIGMAP_NAME", "zen-watcher-filter", _dns_name
            ),
            filter_configmap_namespace=reader.get(
                "FILTER_CONFIGMAP_NAMESPACE", pod_namespace, _dns_label
            ),
            filter_file=reader.get("FILTER_FILE", "", _any),
            shutdown_grace_seconds=reader.get("SHUTDOWN_GRACE_SECONDS", 25.0, _positive_duration),
            shutdown_delay_seconds=reader.get(
                "SHUTDOWN_DELAY_SECONDS", 3.0, _non_negative_duration
            ),
            kubeconfig=reader.get("KUBECONFIG", "", _any),
            findings_metrics=reader.get("FINDINGS_METRICS", "simple", _choice(FINDINGS_MODES)),
            findings_metrics_max_series=reader.get(
                "FINDINGS_METRICS_MAX_SERIES", 2000, _positive_int
            ),
            leader=_leader(reader),
            webhook=_webhook(reader),
            pipeline=_pipeline(reader),
            gc=GcSettings(
                interval_seconds=reader.get("GC_INTERVAL", 3600.0, _positive_duration),
                delete_rate=reader.get("GC_DELETE_RATE", 20.0, _positive_float),
                page_size=reader.get("GC_PAGE_SIZE", 500, _positive_int),
            ),
        )
        if settings.metrics_port == settings.webhook.port:
            raise ConfigError(
                "METRICS_PORT", str(settings.metrics_port), "must differ from WATCHER_PORT"
            )
        return settings


# Every variable Settings.from_env reads, for the README table check and `--help`.
ENV_VARIABLES = (
    "POD_NAMESPACE",
    "POD_NAME",
    "WATCH_NAMESPACE",
    "WATCH_NAMESPACE_SELECTOR",
    "WATCH_CLUSTER_REPORTS",
    "WATCH_REPORTS",
    "REPORT_RESOLVE_GRACE_SECONDS",
    "METRICS_PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "OBSERVATION_TTL_SECONDS",
    "OBSERVATION_TTL_DAYS",
    "FILTER_CONFIGMAP_NAME",
    "FILTER_CONFIGMAP_NAMESPACE",
    "FILTER_FILE",
    "SHUTDOWN_GRACE_SECONDS",
    "SHUTDOWN_DELAY_SECONDS",
    "KUBECONFIG",
    "FINDINGS_METRICS",
    "FINDINGS_METRICS_MAX_SERIES",
    "LEADER_ELECTION_ID",
    "LEADER_LEASE_DURATION",
    "LEADER_RENEW_DEADLINE",
    "LEADER_RETRY_PERIOD",
    "WATCHER_PORT",
    "WEBHOOK_AUTH_TOKEN",
    "WEBHOOK_MAX_BODY_BYTES",
    "WEBHOOK_TLS_CERT_FILE",
    "WEBHOOK_TLS_KEY_FILE",
    "WEBHOOK_TLS_CLIENT_CA_FILE",
    "WEBHOOK_ALLOWED_CIDRS",
    "WEBHOOK_TRUSTED_PROXIES",
    "WEBHOOK_ALLOW_UNAUTHENTICATED",
    "QUEUE_SIZE",
    "DEDUP_WINDOW_SECONDS",
    "DEDUP_MAX_SIZE",
    "WRITER_WORKERS",
    "API_QPS",
    "API_BURST",
    "OBSERVATION_BUDGET",
    "OBSERVATION_BUDGET_PER_NAMESPACE",
    "API_TIMEOUT_SECONDS",
    "GC_INTERVAL",
    "GC_DELETE_RATE",
    "GC_PAGE_SIZE",
)


class _Reader:
    """Reads one variable at a time and names it in the error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except _Invalid as invalid:
            raise ConfigError(name, raw, str(invalid)) from None

    def has(self, name: str) -> bool:
        return bool(self._env.get(name, "").strip())


class _Invalid(ValueError):
    """What a parser says is allowed."""


def _leader(reader: _Reader) -> LeaderSettings:
    leader = LeaderSettings(
        election_id=reader.get("LEADER_ELECTION_ID", "zen-watcher-leader-election", _dns_name),
        lease_duration=reader.get("LEADER_LEASE_DURATION", 15.0, _positive_duration),
        renew_deadline=reader.get("LEADER_RENEW_DEADLINE", 10.0, _positive_duration),
        retry_period=reader.get("LEADER_RETRY_PERIOD", 2.0, _positive_duration),
    )
    # client-go's NewLeaderElector checks the same two inequalities.
    if leader.lease_duration <= leader.renew_deadline:
        raise ConfigError(
            "LEADER_LEASE_DURATION",
            str(leader.lease_duration),
            f"must be greater than LEADER_RENEW_DEADLINE ({leader.renew_deadline})",
        )
    if leader.renew_deadline <= 1.2 * leader.retry_period:
        raise ConfigError(
            "LEADER_RENEW_DEADLINE",
            str(leader.renew_deadline),
            f"must be greater than 1.2 x LEADER_RETRY_PERIOD ({leader.retry_period})",
        )
    return leader


def _webhook(reader: _Reader) -> WebhookSettings:
    webhook = WebhookSettings(
        port=reader.get("WATCHER_PORT", 8080, _port),
        auth_token=reader.get("WEBHOOK_AUTH_TOKEN", "", _any),
        max_body_bytes=reader.get("WEBHOOK_MAX_BODY_BYTES", 16 * 1024 * 1024, _positive_int),
        tls_cert_file=reader.get("WEBHOOK_TLS_CERT_FILE", "", _any),
        tls_key_file=reader.get("WEBHOOK_TLS_KEY_FILE", "", _any),
        tls_client_ca_file=reader.get("WEBHOOK_TLS_CLIENT_CA_FILE", "", _any),
        allowed_cidrs=reader.get("WEBHOOK_ALLOWED_CIDRS", (), _cidr_list),
        trusted_proxies=reader.get("WEBHOOK_TRUSTED_PROXIES", (), _cidr_list),
        allow_unauthenticated=reader.get("WEBHOOK_ALLOW_UNAUTHENTICATED", False, _boolean),
    )
    if bool(webhook.tls_cert_file) != bool(webhook.tls_key_file):
        missing = "WEBHOOK_TLS_KEY_FILE" if webhook.tls_cert_file else "WEBHOOK_TLS_CERT_FILE"
        raise ConfigError(missing, "", "TLS needs both WEBHOOK_TLS_CERT_FILE and ..._KEY_FILE")
    if webhook.tls_client_ca_file and not webhook.tls_cert_file:
        raise ConfigError(
            "WEBHOOK_TLS_CLIENT_CA_FILE",
            webhook.tls_client_ca_file,
            "client certificates need TLS: set WEBHOOK_TLS_CERT_FILE and WEBHOOK_TLS_KEY_FILE",
        )
    return webhook


def _pipeline(reader: _Reader) -> PipelineSettings:
    return PipelineSettings(
        queue_size=reader.get("QUEUE_SIZE", 10000, _positive_int),
        dedup_window_seconds=reader.get("DEDUP_WINDOW_SECONDS", 60.0, _positive_duration),
        dedup_max_size=reader.get("DEDUP_MAX_SIZE", 10000, _positive_int),
        writer_workers=reader.get("WRITER_WORKERS", 8, _positive_int),
        api_qps=reader.get("API_QPS", 0.0, _non_negative_float),
        api_burst=reader.get("API_BURST", 1000, _positive_int),
        api_timeout_seconds=reader.get("API_TIMEOUT_SECONDS", 10.0, _positive_duration),
        budget_total=reader.get("OBSERVATION_BUDGET", 100_000, _non_negative_int),
        budget_per_namespace=reader.get(
            "OBSERVATION_BUDGET_PER_NAMESPACE", 25_000, _non_negative_int
        ),
    )


def _ttl(reader: _Reader) -> int:
    """OBSERVATION_TTL_SECONDS wins over OBSERVATION_TTL_DAYS; clamped to [60 s, 1 year]."""
    if reader.has("OBSERVATION_TTL_SECONDS"):
        seconds = reader.get("OBSERVATION_TTL_SECONDS", 0, _positive_int)
    else:
        seconds = reader.get("OBSERVATION_TTL_DAYS", 7, _positive_int) * 86400
    return max(TTL_MIN_SECONDS, min(TTL_MAX_SECONDS, seconds))


def _any(raw: str) -> str:
    return raw


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in allowed:
            raise _Invalid(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def _boolean(raw: str) -> bool:
    value = raw.lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise _Invalid("must be true or false")


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise _Invalid("must be a whole number greater than 0") from None
    if value <= 0:
        raise _Invalid("must be a whole number greater than 0")
    return value


def _non_negative_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise _Invalid("must be a whole number, 0 or greater") from None
    if value < 0:
        raise _Invalid("must be a whole number, 0 or greater")
    return value


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise _Invalid("must be a TCP port number, 1-65535") from None
    if not 1 <= value <= 65535:
        raise _Invalid("must be a TCP port number, 1-65535")
    return value


def _float(raw: str, allowed: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _Invalid(allowed) from None
    if math.isnan(value) or math.isinf(value):
        raise _Invalid(allowed)
    return value


def _positive_float(raw: str) -> float:
    allowed = "must be a number greater than 0"
    value = _float(raw, allowed)
    if value <= 0:
        raise _Invalid(allowed)
    return value


def _non_negative_float(raw: str) -> float:
    allowed = "must be a number, 0 or greater"
    value = _float(raw, allowed)
    if value < 0:
        raise _Invalid(allowed)
    return value


def parse_duration(raw: str) -> float:
    """Seconds from `90`, `1.5`, `90s`, `30m`, `1h`, `1h30m`, `500ms` or `7d`."""
    allowed = "must be a duration greater than 0, like 90, 90s, 30m, 1h or 1h30m"
    try:
        return _positive_float(raw)
    except _Invalid:
        pass
    text = raw.lower()
    total, position = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            raise _Invalid(allowed)
        total += float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]
        position = match.end()
    if position != len(text) or total <= 0:
        raise _Invalid(allowed)
    return total


def _positive_duration(raw: str) -> float:
    return parse_duration(raw)


def _non_negative_duration(raw: str) -> float:
    """Seconds (0 allowed) or a Go-style duration."""
    try:
        return _non_negative_float(raw)
    except _Invalid:
        pass
    try:
        return parse_duration(raw)
    except _Invalid:
        raise _Invalid("must be 0 or a duration, like 30, 30s, 5m or 1h") from None


def _dns_label(raw: str) -> str:
    if not _DNS_LABEL.match(raw):
        raise _Invalid("must be a DNS-1123 label: lowercase letters, digits and '-', max 63")
    return raw


def _dns_name(raw: str) -> str:
    if len(raw) > 253 or not all(_DNS_LABEL.match(part) for part in raw.split(".")):
        raise _Invalid("must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.'")
    return raw


def _namespace_list(raw: str) -> tuple[str, ...]:
    names = [part.strip() for part in raw.split(",") if part.strip()]
    for name in names:
        if not _DNS_LABEL.match(name):
            raise _Invalid(f"{name!r} is not a namespace name (comma-separated DNS-1123 labels)")
    return tuple(dict.fromkeys(names))


def _label_selector(raw: str) -> str:
    try:
        selector.parse(raw)
    except selector.SelectorError as error:
        raise _Invalid(f"not a label selector: {error}") from None
    return raw


def _cidr_list(raw: str) -> tuple[IpNetwork, ...]:
    networks = []
    for part in raw.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise _Invalid(
                f"{text!r} is not an IP address or CIDR (comma-separated, like 10.0.0.0/8)"
            ) from None
    return tuple(networks)
