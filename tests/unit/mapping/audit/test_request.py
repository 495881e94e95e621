"""Unit tests for zenwatcher.mapping.audit.request and the rule dispatch of mapping.audit.rules.

The audit hot path has three shortcuts, each checked here against the plain way it replaces: the
straight read of a well-typed event against the validating read, the rules picked by resource
against running the whole table, and triage (no Request for a request no rule can match)
against matching it.
"""

from __future__ import annotations

import copy
import enum
import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness import payloads
from tests.harness.audit_events import event, outcome, pod
from zenwatcher.mapping import audit, rejection
from zenwatcher.mapping.audit import request as audit_request
from zenwatcher.mapping.audit import rules as audit_rules


def full_table(request: audit_rules.Request) -> list[audit_rules.Verdict]:
    """What `matches` must equal: every rule of the table run, in order."""
    return [verdict for rule in audit_rules.RULES if (verdict := rule(request)) is not None]


def validated_read(evt: dict[str, Any]) -> audit_rules.Request:
    """The validating path alone (normalise, then read)."""
    read = audit_request._typed_request(audit_request._normalised(evt))
    assert isinstance(read, audit_rules.Request)  # a normalised event is read; never triaged
    return read


class TestReadRequest:
    def test_straight_read_equals_validating_read_for_every_fixture(self) -> None:
        """Every well-formed fixture event takes the straight read, with the same Request."""
        events = payloads.audit_events()
        assert len(events) > 10
        for evt in events:
            straight = audit_request._typed_request(evt)
            assert straight is not None, evt.get("auditID")
            assert validated_read(evt) == straight

    def test_each_field_lands_in_its_place(self) -> None:
        """The reader builds the Request by position: every field, given a value no other
        field has, is read into the attribute of its name."""
        want = audit_rules.Request(
            verb="update",
            username="carol",
            groups=("team-x",),
            api_group="example.io",
            resource="widgets",
            subresource="scale",
            namespace="ns-a",
            name="obj-b",
            path="/apis/example.io/v1/namespaces/ns-a/widgets/obj-b/scale",
            code=202,
            request_object={"request": 1},
            response_object={"response": 2},
        )
        evt = event(
            verb=want.verb,
            user=want.username,
            groups=list(want.groups),
            api_group=want.api_group,
            resource=want.resource,
            subresource=want.subresource,
            namespace=want.namespace,
            name=want.name,
            code=want.code,
            request_object=want.request_object,
            responseObject=want.response_object,
            requestURI=f"{want.path}?dryRun=All",
        )
        assert audit_request._typed_request(evt) == want
        assert validated_read(evt) == want

    def test_nulls_read_as_empty(self) -> None:
        """A null field leaves the straight read, and reads as if it were absent."""
        with_nulls = event(resource="secrets")
        with_nulls["objectRef"]["subresource"] = None
        with_nulls["user"]["groups"] = None
        with_nulls["userAgent"] = None
        without = event(resource="secrets")
        without["user"]["groups"] = []
        assert audit_request._typed_request(with_nulls) is None
        assert audit_request.read_request(without) == audit_request.read_request(with_nulls)

    @pytest.mark.parametrize(
        "ref",
        [{"apiGroup": 5}, {"apiVersion": ["v1"]}, {"resource": "pods", "subresource": 1}],
    )
    def test_object_ref_strings_checked_for_every_request(self, ref: dict[str, Any]) -> None:
        """A wrongly typed objectRef string is rejected whether or not a rule reads it."""
        assert "Rejected:invalid_field" == outcome({**event(), "objectRef": ref})

    @settings(max_examples=300, deadline=None)
    @given(
        resource=st.sampled_from(["secrets", "namespaces", ""]),
        field=st.sampled_from(
            [
                ("verb",),
                ("stage",),
                ("auditID",),
                ("apiVersion",),
                ("requestURI",),
                ("userAgent",),
                ("sourceIPs",),
                ("impersonatedUser",),
                ("user",),
                ("user", "username"),
                ("user", "groups"),
                ("objectRef",),
                ("objectRef", "resource"),
                ("objectRef", "namespace"),
                ("objectRef", "name"),
                ("objectRef", "subresource"),
                ("objectRef", "apiGroup"),
                ("objectRef", "apiVersion"),
                ("responseStatus",),
                ("responseStatus", "code"),
            ]
        ),
        value=st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-1, 600),
            st.text(max_size=8),
            st.lists(st.one_of(st.text(max_size=4), st.integers()), max_size=3),
            st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
        ),
    )
    def test_both_reads_agree_on_any_field_value(
        self, resource: str, field: tuple[str, ...], value: Any
    ) -> None:
        """One field set to any JSON value: both reads give the same Request or the same error,
        and triage rejects exactly what they reject."""
        evt = event(resource=resource)
        if not resource:
            del evt["objectRef"]["resource"]
        target = evt
        for key in field[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        target[field[-1]] = value
        straight = audit_request._typed_request(copy.deepcopy(evt))
        why: str | None
        try:
            validated = validated_read(evt)
        except rejection.Rejected as rejected:
            assert straight is None  # the straight read never accepts what validation rejects
            why = str(rejected)
        else:
            why = None
        if why is not None:
            with pytest.raises(rejection.Rejected, match=re.escape(why)):
                audit_request.triage_request(evt)
            return
        if straight is not None:
            assert straight == validated
        assert audit_request.read_request(evt) == validated
        # Triage checks every field the same: it accepts what the reads accept.
        triaged = audit_request.triage_request(evt)
        assert triaged is audit_request.ROUTINE or triaged == validated


class Text(str):
    """A str subclass: never from JSON, but a caller of the mapper may pass one."""


class Code(enum.IntEnum):
    CREATED = 201


class TestSubclassedValues:
    def test_subclassed_values_read_as_their_plain_values(self) -> None:
        """The straight read leaves them to the validating read, which makes them exact."""
        plain = event(resource="secrets")
        odd = event(resource="secrets", user=Text("alice"), groups=[Text("system:authenticated")])
        odd |= {"verb": Text("create"), "requestURI": Text(plain["requestURI"])}
        odd["objectRef"]["namespace"] = Text("default")
        odd["responseStatus"]["code"] = Code.CREATED
        assert audit_request._typed_request(odd) is None
        read = audit_request.read_request(odd)
        assert audit_request.read_request(plain) == read
        assert type(read.verb) is str
        assert type(read.code) is int
        assert "secret_write" == outcome(odd)

    @pytest.mark.parametrize("field", ["sourceIPs", "user.groups"])
    def test_a_tuple_is_not_an_array(self, field: str) -> None:
        evt = event()
        if field == "sourceIPs":
            evt["sourceIPs"] = ()
        else:
            evt["user"]["groups"] = ()
        assert "Rejected:invalid_field" == outcome(evt)


class TestRuleDispatch:
    RESOURCES = sorted(
        {resource for _, resources, _ in audit_rules.TABLE for resource in resources}
        | {"leases", "events", ""}
    )

    def test_every_fixture_matches_as_the_full_table(self) -> None:
        """For every fixture event the dispatched rules give the full table's verdicts."""
        for evt in payloads.audit_events():
            request = audit_request.read_request(evt)
            assert audit_rules.matches(request) == full_table(request)

    @settings(max_examples=500, deadline=None)
    @given(
        resource=st.sampled_from(RESOURCES),
        subresource=st.sampled_from(["", "exec", "attach", "portforward", "status"]),
        verb=st.sampled_from(["create", "get", "update", "patch", "delete", "list", "watch"]),
        api_group=st.sampled_from(["", "apps", "batch", audit_rules.RBAC_GROUP]),
        username=st.sampled_from(["alice", audit_rules.ANONYMOUS_USER]),
        code=st.sampled_from([None, 200, 201, 403, 404]),
        request_object=st.sampled_from(
            [
                None,
                pod(hostPID=True),
                {"data": {"password": "hunter2"}},
                {"spec": {"type": "NodePort"}},
                {"rules": [{"verbs": ["*"], "resources": ["*"], "apiGroups": ["*"]}]},
                {"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}},
            ]
        ),
    )
    def test_dispatch_equals_full_table(self, **fields: Any) -> None:
        """Rules picked by resource give exactly the verdicts of running every rule, in order."""
        request = audit_rules.Request(
            groups=("system:authenticated",),
            namespace="default",
            name="web",
            path="/api/v1/namespaces/default/x",
            **fields,
        )
        assert audit_rules.matches(request) == full_table(request)


class TestTriage:
    """The third shortcut: a request no rule can match is not read into a Request at all."""

    IDENTITIES = (  # (username, groups, code): the parts the rules for every resource read
        ("alice", ("system:authenticated",), 200),
        ("alice", (), 403),
        ("", (), None),
        (audit_rules.ANONYMOUS_USER, (), 200),
        ("bob", ("x", audit_rules.UNAUTHENTICATED_GROUP), 404),
    )
    VERBS = ("create", "get", "update", "patch", "delete", "deletecollection", "list", "watch")
    OBJECTS = (
        None,
        pod(hostPID=True),
        {"spec": {"template": {"spec": pod(privileged=True)["spec"]}}},
        {"data": {"password": "hunter2"}},
        {"spec": {"type": "NodePort"}},
        {"rules": [{"verbs": ["*"], "resources": ["*"], "apiGroups": ["*"]}]},
        {"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}},
    )

    def test_what_no_rule_can_match_the_full_table_does_not_match(self) -> None:
        """Every combination of resource, verb, subresource, group, object and identity: where
        triage says no rule can match, running the whole table matches nothing."""
        routine = 0
        for resource, verb, subresource, api_group, obj, identity in itertools.product(
            TestRuleDispatch.RESOURCES,
            self.VERBS,
            ("", "exec", "ephemeralcontainers", "status"),
            ("", "apps", audit_rules.RBAC_GROUP),
            self.OBJECTS,
            self.IDENTITIES,
        ):
            username, groups, code = identity
            if not audit_rules.no_rule_can_match(resource, verb, username, list(groups), code):
                continue
            routine += 1
            request = audit_rules.Request(
                verb,
                username,
                groups,
                api_group,
                resource,
                subresource,
                "kube-system",
                "web",
                "/api/v1/x",
                code,
                obj,
                obj,
            )
            assert [] == full_table(request), request
        assert routine > 1000  # list, watch and get of most resources, by most identities

    def test_each_fixture_is_triaged_as_read(self) -> None:
        """A fixture event (each a finding or a near miss) is ROUTINE only when no rule matches
        it; else triage reads the same Request."""
        for evt in payloads.audit_events(include_malformed=True):
            try:
                read = audit_request.read_request(evt)
            except rejection.Rejected:
                with pytest.raises(rejection.Rejected):
                    audit_request.triage_request(evt)
                continue
            triaged = audit_request.triage_request(evt)
            if triaged is audit_request.ROUTINE:
                assert [] == audit_rules.matches(read)
            else:
                assert triaged == read

    @pytest.mark.parametrize(
        ("fields", "routine"),
        [
            ({"verb": "update", "resource": "leases"}, True),
            ({"verb": "get", "resource": "leases", "user": audit_rules.ANONYMOUS_USER}, False),
            ({"verb": "get", "resource": "leases", "code": 403}, False),
            ({"verb": "get", "resource": "secrets"}, True),
            ({"verb": "update", "resource": "secrets"}, False),
            ({"verb": "watch", "resource": "namespaces"}, True),
            ({"verb": "delete", "resource": "namespaces"}, False),
            ({"verb": "list", "resource": "pods"}, True),
            ({"verb": "get", "resource": "pods"}, False),  # kubectl exec over WebSocket is a get
        ],
    )
    def test_routine_or_read(self, fields: dict[str, Any], routine: bool) -> None:
        evt = event(**fields)
        triaged = audit_request.triage_request(evt)
        assert (triaged is audit_request.ROUTINE) is routine
        if not routine:
            assert triaged == audit_request.read_request(evt)


class TestIgnoredMessage:
    def test_no_rule_message_is_written_when_read(self) -> None:
        """A request no rule matches is Ignored, and its message says what it was."""
        with pytest.raises(rejection.Ignored) as caught:
            audit.map_audit_event(event(verb="list", resource="leases", name=None, code=200))
        assert "no_rule" == caught.value.reason
        assert "no audit rule matches list leases default" == str(caught.value)
