"""Settings from the environment: defaults, parsing, and one clear error per bad value."""

from __future__ import annotations

import ipaddress

import pytest

from zenwatcher.settings import ENV_VARIABLES, ConfigError, Settings, parse_duration


class TestDefaults:
    def test_empty_environment_gives_the_documented_defaults(self) -> None:
        """No variables set: the defaults docs/design.md names."""
        settings = Settings.from_env({})
        assert "zen-system" == settings.pod_namespace
        assert () == settings.watch_namespaces
        assert 8080 == settings.webhook.port
        assert 9090 == settings.metrics_port
        assert 60.0 == settings.pipeline.dedup_window_seconds
        assert 10000 == settings.pipeline.dedup_max_size
        assert (0.0, 1000) == (settings.pipeline.api_qps, settings.pipeline.api_burst)
        assert (100_000, 25_000) == (
            settings.pipeline.budget_total,
            settings.pipeline.budget_per_namespace,
        )
        assert 3600.0 == settings.gc.interval_seconds
        assert 7 * 86400 == settings.ttl_seconds
        assert "zen-watcher-leader-election" == settings.leader.election_id
        assert (15.0, 10.0, 2.0) == (
            settings.leader.lease_duration,
            settings.leader.renew_deadline,
            settings.leader.retry_period,
        )

    def test_filter_namespace_defaults_to_pod_namespace(self) -> None:
        """FILTER_CONFIGMAP_NAMESPACE follows POD_NAMESPACE unless set."""
        assert "sec" == Settings.from_env({"POD_NAMESPACE": "sec"}).filter_configmap_namespace


class TestNamespaceSelector:
    def test_selector_kept_as_given_and_cluster_reports_off(self) -> None:
        """The selector goes to the API server as written; like a list, it turns cluster
        reports off unless WATCH_CLUSTER_REPORTS says otherwise."""
        settings = Settings.from_env({"WATCH_NAMESPACE_SELECTOR": " env in (a,b), !legacy "})
        assert "env in (a,b), !legacy" == settings.watch_namespace_selector
        assert settings.watch_cluster_reports is False
        both = {"WATCH_NAMESPACE_SELECTOR": "env=a", "WATCH_CLUSTER_REPORTS": "true"}
        assert Settings.from_env(both).watch_cluster_reports is True

    def test_with_watch_namespace_is_refused_naming_both(self) -> None:
        with pytest.raises(ConfigError) as raised:
            Settings.from_env({"WATCH_NAMESPACE": "a", "WATCH_NAMESPACE_SELECTOR": "env=a"})
        assert "WATCH_NAMESPACE and WATCH_NAMESPACE_SELECTOR" in str(raised.value)


class TestParsing:
    def test_watch_namespace_list(self) -> None:
        """Comma-separated, blanks and repeats ignored, order kept."""
        settings = Settings.from_env({"WATCH_NAMESPACE": " a, b,,a "})
        assert ("a", "b") == settings.watch_namespaces

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("90", 90.0), ("1h", 3600.0), ("1h30m", 5400.0), ("500ms", 0.5), ("2d", 172800.0)],
    )
    def test_durations(self, text: str, seconds: float) -> None:
        """GC_INTERVAL and friends take Go-style durations or plain seconds."""
        assert seconds == parse_duration(text)

    @pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("45", 45.0), ("2m", 120.0)])
    def test_resolve_grace_takes_durations(self, text: str, seconds: float) -> None:
        grace = Settings.from_env({"REPORT_RESOLVE_GRACE_SECONDS": text})
        assert seconds == grace.report_resolve_grace_seconds

    def test_ttl_seconds_wins_over_days_and_is_clamped(self) -> None:
        """OBSERVATION_TTL_SECONDS beats OBSERVATION_TTL_DAYS; both clamp to [60 s, 1 year]."""
        assert (
            60
            == Settings.from_env(
                {"OBSERVATION_TTL_SECONDS": "5", "OBSERVATION_TTL_DAYS": "3"}
            ).ttl_seconds
        )
        assert 3 * 86400 == Settings.from_env({"OBSERVATION_TTL_DAYS": "3"}).ttl_seconds
        assert 365 * 86400 == Settings.from_env({"OBSERVATION_TTL_DAYS": "9999"}).ttl_seconds

    def test_cidrs(self) -> None:
        """WEBHOOK_ALLOWED_CIDRS parses addresses and networks."""
        settings = Settings.from_env({"WEBHOOK_ALLOWED_CIDRS": "10.0.0.0/8, 127.0.0.1"})
        assert (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("127.0.0.1/32"),
        ) == settings.webhook.allowed_cidrs


class TestErrors:
    @pytest.mark.parametrize(
        ("variable", "value", "allowed"),
        [
            ("DEDUP_WINDOW_SECONDS", "abc", "duration greater than 0"),
            ("DEDUP_MAX_SIZE", "-5", "whole number greater than 0"),
            ("LOG_LEVEL", "verbose", "one of debug, info, warning, error, critical"),
            ("LOG_FORMAT", "xml", "one of json, console"),
            ("WATCHER_PORT", "70000", "TCP port number"),
            ("WATCH_NAMESPACE", "a,B_c", "not a namespace name"),
            ("WATCH_NAMESPACE_SELECTOR", "env in (prod", "not a label selector: unclosed"),
            ("WEBHOOK_ALLOWED_CIDRS", "10.0.0.0/33", "not an IP address or CIDR"),
            ("GC_INTERVAL", "1 hour", "duration"),
            ("API_QPS", "-1", "0 or greater"),
            ("LEADER_ELECTION_ID", "Not_Valid", "DNS-1123 subdomain"),
            ("FILTER_CONFIGMAP_NAME", "Not_A_Name!", "DNS-1123 subdomain"),
            ("REPORT_RESOLVE_GRACE_SECONDS", "soon", "0 or a duration"),
            ("METRICS_PORT", "8080", "must differ from WATCHER_PORT"),
            ("FINDINGS_METRICS", "verbose", "one of off, simple, detailed"),
            ("FINDINGS_METRICS_MAX_SERIES", "0", "whole number greater than 0"),
        ],
    )
    def test_bad_value_names_variable_value_and_allowed(
        self, variable: str, value: str, allowed: str
    ) -> None:
        """The error names the variable, repeats the value and says what is allowed."""
        with pytest.raises(ConfigError) as raised:
            Settings.from_env({variable: value})
        message = str(raised.value)
        assert message.startswith(f"invalid {variable}={value!r}: ")
        assert allowed in message

    def test_leader_timings_follow_client_go_rules(self) -> None:
        """Lease duration must exceed the renew deadline, which must exceed 1.2 x retry period."""
        with pytest.raises(ConfigError, match="LEADER_LEASE_DURATION"):
            Settings.from_env({"LEADER_LEASE_DURATION": "10", "LEADER_RENEW_DEADLINE": "10"})
        with pytest.raises(ConfigError, match="LEADER_RENEW_DEADLINE"):
            Settings.from_env({"LEADER_RENEW_DEADLINE": "2", "LEADER_RETRY_PERIOD": "2"})

    def test_tls_needs_both_files(self) -> None:
        """A certificate without a key (or the reverse) is refused."""
        with pytest.raises(ConfigError, match="WEBHOOK_TLS_KEY_FILE"):
            Settings.from_env({"WEBHOOK_TLS_CERT_FILE": "/tls/tls.crt"})


class TestVariableList:
    def test_every_listed_variable_is_read(self) -> None:
        """ENV_VARIABLES (the README table's source) names only variables from_env reads."""
        for variable in ENV_VARIABLES:
            if variable in (
                "KUBECONFIG",
                "WEBHOOK_AUTH_TOKEN",
                "FILTER_FILE",
                "FILTER_CONFIGMAP_NAME",
                "WEBHOOK_TLS_CERT_FILE",
                "WEBHOOK_TLS_KEY_FILE",
                "WEBHOOK_TLS_CLIENT_CA_FILE",
                "POD_NAME",
                "OBSERVATION_TTL_SECONDS",
                "OBSERVATION_TTL_DAYS",
            ):
                continue  # free-form values: checked by the README table test instead
            with pytest.raises(ConfigError, match=variable):
                Settings.from_env({variable: "!!"})


class TestWebhookAuthentication:
    def test_no_credential_is_refused_naming_the_ways_out(self) -> None:
        """The defaults name no credential: require_authentication refuses them."""
        webhook = Settings.from_env({}).webhook
        assert not webhook.authenticated
        with pytest.raises(ConfigError) as raised:
            webhook.require_authentication()
        assert "WEBHOOK_AUTH_TOKEN" == raised.value.variable
        for variable in ("WEBHOOK_TLS_CLIENT_CA_FILE", "WEBHOOK_ALLOW_UNAUTHENTICATED=true"):
            assert variable in str(raised.value)

    @pytest.mark.parametrize(
        "env",
        [
            {"WEBHOOK_AUTH_TOKEN": "t"},
            {
                "WEBHOOK_TLS_CERT_FILE": "/tls/tls.crt",
                "WEBHOOK_TLS_KEY_FILE": "/tls/tls.key",
                "WEBHOOK_TLS_CLIENT_CA_FILE": "/tls/ca.crt",
            },
        ],
    )
    def test_a_token_or_a_client_ca_is_a_credential(self, env: dict[str, str]) -> None:
        webhook = Settings.from_env(env).webhook
        assert webhook.authenticated
        webhook.require_authentication()

    def test_server_tls_alone_is_not_a_credential(self) -> None:
        """HTTPS without a client CA authenticates nobody."""
        env = {"WEBHOOK_TLS_CERT_FILE": "/tls/tls.crt", "WEBHOOK_TLS_KEY_FILE": "/tls/tls.key"}
        with pytest.raises(ConfigError, match="WEBHOOK_AUTH_TOKEN"):
            Settings.from_env(env).webhook.require_authentication()

    def test_the_opt_in_runs_open(self) -> None:
        webhook = Settings.from_env({"WEBHOOK_ALLOW_UNAUTHENTICATED": "true"}).webhook
        assert webhook.allow_unauthenticated
        assert not webhook.authenticated
        webhook.require_authentication()
