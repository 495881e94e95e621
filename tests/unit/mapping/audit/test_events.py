"""Unit tests for zenwatcher.mapping.audit: Kubernetes audit events to findings (docs/design.md §4)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness import payloads
from tests.harness.audit_events import event, outcome, pod
from tests.harness.paths import SHARED_FIXTURES
from zenwatcher.finding import Category, Finding, ResourceRef, Severity
from zenwatcher.mapping import audit, rejection
from zenwatcher.mapping.audit import objects
from zenwatcher.observation import rfc3339

AUDIT_FIXTURES = SHARED_FIXTURES / "audit"

# file -> (eventType, severity, namespace, resource name) for each Event in it, or the rejection.
Outcome = tuple[str, Severity, str, str]
EXPECTED: dict[str, list[Outcome] | str] = {
    "anonymous_creates_namespace_foo.json": [("anonymous_access", Severity.HIGH, "", "foo")],
    "attach_cluster_admin_role.json": [
        ("cluster_admin_binding", Severity.CRITICAL, "", "some-reader-binding")
    ],
    "create_cluster_role_wildcard_verbs.json": [
        ("rbac_wildcard", Severity.HIGH, "", "some-reader")
    ],
    "create_configmap_sensitive_values.json": [
        ("sensitive_configmap", Severity.MEDIUM, "default", "my-config")
    ]
    * 6,
    "create_kube_system_secret.json": [
        ("secret_write", Severity.HIGH, "kube-system", "bootstrap-token-ne7bxu")
    ],
    "create_nginx_pod_privileged.json": [
        ("privileged_pod", Severity.HIGH, "default", "nginx-deployment-5cdcc99dbf-rgw6z")
    ],
    "create_nginx_service_nodeport.json": [("nodeport_service", Severity.LOW, "default", "nginx")],
    "delete_clusterrolebinding.json": [("rbac_change", Severity.MEDIUM, "", "some-reader-binding")],
    "exec_pod.json": [("pod_exec", Severity.HIGH, "default", "nginx-deployment-7998647bdf-phvq7")],
    "fal_01_003.json": "invalid_kind",
}


_TYPE_META = ("kind", "apiVersion")


def _outcome(finding: Finding) -> tuple[str, str, str]:
    return finding.event_type, finding.severity.value, finding.name


def read_documents(path: Path) -> list[Any]:
    """A fixture's JSON documents: one JSON value, or JSON lines (one object per line)."""
    text = path.read_text()
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def fixture_events(name: str) -> list[Any]:
    """Every audit Event in a fixture file, EventLists split."""
    return [
        event
        for doc in read_documents(AUDIT_FIXTURES / name)
        for event in audit.split_audit_body(doc)
    ]


def privileged_container(name: str = "app") -> dict[str, Any]:
    return {"name": name, "image": "nginx", "securityContext": {"privileged": True}}


class TestFixtures:
    """Every shared audit fixture maps to its expected outcome."""

    def test_every_fixture_has_an_expectation(self) -> None:
        """A new fixture file cannot go untested."""
        assert set(EXPECTED) == {path.name for path in AUDIT_FIXTURES.glob("*.json")}

    @pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED.items() if isinstance(e, list)))
    def test_fixture_outcome(self, name: str) -> None:
        """Each Event gives its expected eventType, severity, namespace and name."""
        findings = [audit.map_audit_event(item) for item in fixture_events(name)]
        got = [
            (
                finding.event_type,
                finding.severity,
                finding.namespace,
                finding.resource.name if finding.resource else "",
            )
            for finding in findings
        ]
        assert EXPECTED[name] == got
        assert all(finding.source == "audit" for finding in findings)
        assert all(finding.detected_at is not None for finding in findings)

    def test_malformed_fixture_body_is_invalid_shape(self) -> None:
        """fal_01_003.json ({"kind": 0}) is refused as a webhook body."""
        (doc,) = read_documents(AUDIT_FIXTURES / "fal_01_003.json")
        with pytest.raises(rejection.Rejected) as caught:
            audit.split_audit_body(doc)
        assert "invalid_shape" == caught.value.reason
        assert "kind 0" in str(caught.value)

    def test_malformed_fixture_event_is_rejected(self) -> None:
        """fal_01_003.json as an Event is rejected with a clear reason and message."""
        (doc,) = read_documents(AUDIT_FIXTURES / "fal_01_003.json")
        with pytest.raises(rejection.Rejected) as caught:
            audit.map_audit_event(doc)
        assert EXPECTED["fal_01_003.json"] == caught.value.reason
        assert "expected an audit Event, got kind 0" == str(caught.value)

    def test_sensitive_configmap_repeats_are_one_finding(self) -> None:
        """The six ConfigMap creates by one user of one object share one Observation name."""
        names = {
            audit.map_audit_event(e).name
            for e in fixture_events("create_configmap_sensitive_values.json")
        }
        assert 1 == len(names)

    def test_namespace_fixture_category_and_resource(self) -> None:
        """Anonymous namespace create: a cluster-scoped Namespace; namespace_change also matched."""
        (item,) = fixture_events("anonymous_creates_namespace_foo.json")
        finding = audit.map_audit_event(item)
        assert ResourceRef(api_version="v1", kind="Namespace", name="foo") == finding.resource
        assert ["namespace_change"] == finding.details["alsoMatched"]

    def test_exec_fixture_details(self) -> None:
        """The exec fixture's details carry the request facts used to investigate it."""
        (item,) = fixture_events("exec_pod.json")
        finding = audit.map_audit_event(item)
        assert {
            "rule": "pod_exec",
            "user": "minikube-user",
            "verb": "create",
            "stage": "ResponseStarted",
            "responseCode": 101,
            "auditID": "ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6",
            "sourceIPs": ["192.168.99.1"],
        }.items() <= dict(finding.details).items()
        assert "pod exec by minikube-user into default/nginx-deployment-7998647bdf-phvq7" == (
            finding.title
        )


class TestSplitAuditBody:
    """A webhook body is split into candidate Events."""

    @pytest.mark.parametrize("version", ["audit.k8s.io/v1", "audit.k8s.io/v1beta1"])
    def test_event_list(self, version: str) -> None:
        """An EventList (v1 or v1beta1) gives its items."""
        items = [event(), event(verb="delete")]
        body = {"kind": "EventList", "apiVersion": version, "items": items}
        assert items == audit.split_audit_body(body)

    @pytest.mark.parametrize("version", ["audit.k8s.io/v1", "audit.k8s.io/v1beta1"])
    def test_webhook_event_list_items_without_type(self, version: str) -> None:
        """The API server's webhook backend sends items without kind and apiVersion (its codec
        types the list only); each fixture event sent that way maps as its log line does."""
        names = [name for name, outcome in EXPECTED.items() if not isinstance(outcome, str)]
        logged = [each for name in names for each in fixture_events(name)]
        stripped = [
            {key: value for key, value in copy.deepcopy(each).items() if key not in _TYPE_META}
            for each in logged
        ]
        body = {"kind": "EventList", "apiVersion": version, "metadata": {}, "items": stripped}

        items = audit.split_audit_body(body)

        assert [{**each, "kind": "Event", "apiVersion": version} for each in stripped] == items
        assert [_outcome(audit.map_audit_event(each)) for each in logged] == [
            _outcome(audit.map_audit_event(each)) for each in items
        ]
        assert all(isinstance(EXPECTED[name], list) for name in names)
        assert 14 == len(items)

    def test_typed_items_keep_their_type(self) -> None:
        """An item that names its kind is taken as it says (a wrong kind is still rejected)."""
        body = {
            "kind": "EventList",
            "apiVersion": "audit.k8s.io/v1",
            "items": [{"kind": "Pod", "apiVersion": "v1"}, event()],
        }
        first, second = audit.split_audit_body(body)
        assert {"kind": "Pod", "apiVersion": "v1"} == first
        with pytest.raises(rejection.Rejected) as caught:
            audit.map_audit_event(first)
        assert "invalid_kind" == caught.value.reason
        assert "Event" == second["kind"]

    def test_event_list_null_items(self) -> None:
        """Go encodes an empty list as null: no events."""
        body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": None}
        assert [] == audit.split_audit_body(body)

    def test_single_event(self) -> None:
        """A single Event is a list of one."""
        single = event()
        assert [single] == audit.split_audit_body(single)

    def test_bare_list(self) -> None:
        """A bare JSON array is its elements."""
        assert [1, {"kind": "Event"}] == audit.split_audit_body([1, {"kind": "Event"}])

    @pytest.mark.parametrize(
        "payload",
        [
            {"kind": "EventList", "apiVersion": "v1", "items": []},
            {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": {}},
            {"kind": "PolicyReport"},
            {"kind": 0},
            {},
            "text",
            7,
            None,
        ],
    )
    def test_other_shapes_rejected(self, payload: object) -> None:
        """Core v1 EventLists, other kinds and non-objects are invalid shapes."""
        with pytest.raises(rejection.Rejected) as caught:
            audit.split_audit_body(payload)
        assert "invalid_shape" == caught.value.reason


class TestValidation:
    """Malformed Events are rejected with a reason naming what was wrong."""

    @pytest.mark.parametrize(
        ("evt", "expected"),
        [
            ([], "Rejected:not_an_object"),
            ("event", "Rejected:not_an_object"),
            ({**event(), "kind": "Pod"}, "Rejected:invalid_kind"),
            ({**event(), "apiVersion": "v1"}, "Rejected:invalid_api_version"),
            ({**event(), "auditID": ""}, "Rejected:missing_field"),
            ({**event(), "verb": None}, "Rejected:missing_field"),
            ({**event(), "stage": 3}, "Rejected:invalid_field"),
            ({**event(), "user": "alice"}, "Rejected:invalid_field"),
            ({**event(), "user": {"username": "a", "groups": "g"}}, "Rejected:invalid_field"),
            ({**event(), "objectRef": ["pods"]}, "Rejected:invalid_field"),
            ({**event(), "objectRef": {"resource": 5}}, "Rejected:invalid_field"),
            ({**event(), "responseStatus": {"code": "201"}}, "Rejected:invalid_field"),
            ({**event(), "responseStatus": {"code": True}}, "Rejected:invalid_field"),
            ({**event(), "sourceIPs": "10.0.0.1"}, "Rejected:invalid_field"),
        ],
    )
    def test_rejections(self, evt: object, expected: str) -> None:
        """Each malformation gives its rejection reason."""
        assert expected == outcome(evt)

    def test_missing_keys(self) -> None:
        """An Event without auditID, verb or stage names the missing field."""
        for key in ("auditID", "verb", "stage"):
            evt = event()
            del evt[key]
            with pytest.raises(rejection.Rejected) as caught:
                audit.map_audit_event(evt)
            assert ("missing_field", f"audit event has no {key}") == (
                caught.value.reason,
                str(caught.value),
            )

    def test_wrong_type_rejected_at_any_stage(self) -> None:
        """A wrongly typed field is rejected even at a stage that is not judged."""
        evt = {**event(stage="RequestReceived"), "userAgent": 1}
        assert "Rejected:invalid_field" == outcome(evt)

    def test_event_without_api_version(self) -> None:
        """Falco's trace files omit apiVersion; kind Event is enough."""
        evt = event(resource="secrets")
        del evt["apiVersion"]
        assert "secret_write" == outcome(evt)

    @pytest.mark.parametrize("stamp", [None, "soon", 12.5e30])
    def test_bad_timestamps_are_not_rejections(self, stamp: object) -> None:
        """Unusable tool times leave detected_at None instead of rejecting."""
        evt = event(resource="secrets", stageTimestamp=stamp, requestReceivedTimestamp=stamp)
        assert audit.map_audit_event(evt).detected_at is None

    def test_received_timestamp_fallback(self) -> None:
        """Without a stageTimestamp the request's receipt time is used."""
        evt = event(resource="secrets", stageTimestamp="garbage")
        finding = audit.map_audit_event(evt)
        assert finding.detected_at is not None
        assert "2024-01-02T03:04:05Z" == rfc3339(finding.detected_at)


class TestStages:
    """Each request is judged once, at the stage its kind is judged at."""

    def exec_event(self, stage: str, code: int | None = 101) -> dict[str, Any]:
        return event(subresource="exec", stage=stage, code=code)

    def test_exec_judged_at_response_started(self) -> None:
        """A streaming request is judged when it starts."""
        assert "pod_exec" == outcome(self.exec_event("ResponseStarted"))

    def test_exec_ignored_at_response_complete(self) -> None:
        """Its ResponseComplete is not judged again."""
        assert "Ignored:stage" == outcome(self.exec_event("ResponseComplete"))

    @pytest.mark.parametrize("stage", ["ResponseStarted", "ResponseComplete", "Panic"])
    def test_exec_at_any_stage_when_asked(self, stage: str) -> None:
        """With STREAMING_AT_ANY (the caller judges each auditID once), any stage is judged."""
        evt = self.exec_event(stage)
        assert "pod_exec" == outcome(evt, streaming_judged_at=audit.STREAMING_AT_ANY)

    def test_exec_request_received_never_judged(self) -> None:
        evt = self.exec_event("RequestReceived", code=None)
        assert "Ignored:stage" == outcome(evt, streaming_judged_at=audit.STREAMING_AT_ANY)

    @pytest.mark.parametrize("stage", ["RequestReceived", "ResponseStarted", "Unknown"])
    def test_normal_request_other_stages_ignored(self, stage: str) -> None:
        """A normal request is not judged before it completes."""
        assert "Ignored:stage" == outcome(event(resource="secrets", stage=stage, code=None))

    @pytest.mark.parametrize("stage", ["ResponseComplete", "Panic"])
    def test_normal_request_judged_at_end(self, stage: str) -> None:
        """A normal request is judged at ResponseComplete, or Panic when it crashed."""
        assert "secret_write" == outcome(event(resource="secrets", stage=stage, code=500))

    @pytest.mark.parametrize(
        ("evt", "expected"),
        [
            (event(subresource="exec"), True),
            (event(subresource="attach"), True),
            (event(subresource="portforward"), True),
            (event(subresource="log"), False),
            (event(), False),
            (event(subresource="exec", api_group="example.com"), False),
            ({"objectRef": {"resource": "pods", "subresource": ["exec"]}}, False),
            ("not an event", False),
        ],
    )
    def test_is_streaming(self, evt: object, expected: bool) -> None:
        """Only pods/exec, pods/attach and pods/portforward are streaming."""
        assert expected == audit.is_streaming(evt)

    def test_audit_id(self) -> None:
        """audit_id gives the request's auditID, the caller's dedup key."""
        assert "11111111-2222-3333-4444-555555555555" == audit.audit_id(event())

    @pytest.mark.parametrize("evt", [{}, {"auditID": 3}, []])
    def test_audit_id_rejects(self, evt: object) -> None:
        """An event without a usable auditID is rejected."""
        with pytest.raises(rejection.Rejected):
            audit.audit_id(evt)


class TestStreamingRules:
    """exec, attach and portforward on pods are high-severity findings."""

    @pytest.mark.parametrize(
        ("subresource", "expected"),
        [("exec", "pod_exec"), ("attach", "pod_attach"), ("portforward", "pod_portforward")],
    )
    @pytest.mark.parametrize("verb", ["create", "get"])
    def test_streaming_subresources(self, subresource: str, expected: str, verb: str) -> None:
        """create (SPDY) or get (WebSocket, kubectl >= 1.30) on the subresource matches."""
        evt = event(verb=verb, subresource=subresource, stage="ResponseStarted", code=101)
        finding = audit.map_audit_event(evt)
        assert (expected, Severity.HIGH) == (finding.event_type, finding.severity)
        assert ResourceRef(api_version="v1", kind="Pod", name="web", namespace="default") == (
            finding.resource
        )

    def test_pod_log_is_no_rule(self) -> None:
        """Reading logs is not a finding."""
        assert "Ignored:no_rule" == outcome(event(verb="get", subresource="log", code=200))


class TestPrivilegedPod:
    """Pods and pod templates that break out of isolation are privileged_pod."""

    @pytest.mark.parametrize(
        ("spec", "reason"),
        [
            ({"containers": [privileged_container()]}, "container app is privileged"),
            (
                {"initContainers": [privileged_container("init")]},
                "initContainer init is privileged",
            ),
            ({"hostNetwork": True}, "hostNetwork: true"),
            ({"hostPID": True}, "hostPID: true"),
            ({"hostIPC": True}, "hostIPC: true"),
            (
                {"volumes": [{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}]},
                "hostPath volume sock mounts /var/run/docker.sock",
            ),
        ],
    )
    def test_pod_create(self, spec: dict[str, Any], reason: str) -> None:
        """Each privileged feature of a pod spec matches and is named in the reasons."""
        finding = audit.map_audit_event(event(request_object=pod(**spec)))
        assert ("privileged_pod", Severity.HIGH) == (finding.event_type, finding.severity)
        assert reason in finding.details["reasons"]

    def test_plain_pod_is_no_rule(self) -> None:
        """An ordinary pod is not a finding."""
        assert "Ignored:no_rule" == outcome(event(request_object=pod(hostNetwork=False)))

    def test_ephemeral_container_via_debug(self) -> None:
        """kubectl debug's ephemeral container update is judged too."""
        obj = pod(ephemeralContainers=[privileged_container("debugger")])
        evt = event(verb="patch", subresource="ephemeralcontainers", request_object=obj)
        assert "privileged_pod" == outcome(evt)

    @pytest.mark.parametrize(
        ("resource", "wrap"),
        [
            ("deployments", lambda spec: {"spec": {"template": {"spec": spec}}}),
            ("statefulsets", lambda spec: {"spec": {"template": {"spec": spec}}}),
            ("daemonsets", lambda spec: {"spec": {"template": {"spec": spec}}}),
            ("replicasets", lambda spec: {"spec": {"template": {"spec": spec}}}),
            ("jobs", lambda spec: {"spec": {"template": {"spec": spec}}}),
            (
                "cronjobs",
                lambda spec: {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}},
            ),
        ],
    )
    @pytest.mark.parametrize("verb", ["create", "update", "patch"])
    def test_workload_templates(self, resource: str, wrap: Any, verb: str) -> None:
        """A workload whose pod template is privileged matches, with its own kind."""
        obj = wrap({"containers": [privileged_container()]})
        evt = event(verb=verb, resource=resource, api_group="apps", request_object=obj)
        finding = audit.map_audit_event(evt)
        assert "privileged_pod" == finding.event_type
        assert finding.resource is not None
        assert "web" == finding.resource.name

    def test_deployment_resource_ref(self) -> None:
        """The resource of a privileged Deployment is the Deployment in apps/v1."""
        obj = {"spec": {"template": {"spec": {"hostPID": True}}}}
        evt = event(resource="deployments", api_group="apps", request_object=obj)
        assert ResourceRef(
            api_version="apps/v1", kind="Deployment", name="web", namespace="default"
        ) == (audit.map_audit_event(evt).resource)

    def test_delete_is_not_privileged(self) -> None:
        """Deleting a privileged pod is not privileged_pod."""
        evt = event(verb="delete", request_object=pod(hostPID=True))
        assert "Ignored:no_rule" == outcome(evt)

    def test_metadata_level_cannot_be_judged(self) -> None:
        """Without the object (Metadata level) the pod cannot be judged privileged."""
        assert "Ignored:no_rule" == outcome(event())

    def test_response_object_fallback_for_create(self) -> None:
        """When only the stored object was logged, a create is judged from it."""
        evt = event(responseObject=pod(hostIPC=True))
        assert "privileged_pod" == outcome(evt)

    def test_generated_name_from_response(self) -> None:
        """A create by generateName takes the resource name from the stored object."""
        request_obj = pod(hostPID=True)
        request_obj["metadata"] = {"generateName": "web-"}
        response_obj = copy.deepcopy(request_obj)
        response_obj["metadata"]["name"] = "web-x7k2p"
        evt = event(name=None, request_object=request_obj, responseObject=response_obj)
        finding = audit.map_audit_event(evt)
        assert finding.resource is not None
        assert "web-x7k2p" == finding.resource.name


class TestSensitiveHostPath:
    """Which hostPath mounts count as sensitive (the path, under it, or above it)."""

    @pytest.mark.parametrize(
        "path",
        [
            "/",
            "//",
            "/etc",
            "/etc/",
            "/etc/kubernetes",
            "/proc/1/root",
            "/root/.ssh",
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/var/run/containerd/containerd.sock",
            "/run/containerd",
            "/var/lib/kubelet/pods",
            "/var/lib/../lib/kubelet",
            "/var",
            "/var/run",
            "/var/lib",
            "/run",
        ],
    )
    def test_sensitive(self, path: str) -> None:
        """These paths expose the node."""
        assert objects.sensitive_host_path(path)

    @pytest.mark.parametrize(
        "path",
        ["/data", "/var/log", "/var/lib/docker-data", "/etcetera", "/tmp", "", "etc", "/opt/etc"],
    )
    def test_not_sensitive(self, path: str) -> None:
        """Ordinary data directories and relative paths do not."""
        assert not objects.sensitive_host_path(path)


class TestRbac:
    """RBAC writes: cluster-admin bindings, wildcard roles, other changes."""

    def binding(self, role: str, kind: str = "ClusterRole", **overrides: Any) -> dict[str, Any]:
        obj = {
            "kind": "ClusterRoleBinding",
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"kind": "User", "name": "bob"}],
        }
        return event(
            resource="clusterrolebindings",
            api_group="rbac.authorization.k8s.io",
            namespace=None,
            request_object=obj,
            **overrides,
        )

    def role(self, *rules: dict[str, Any], verb: str = "create") -> dict[str, Any]:
        return event(
            verb=verb,
            resource="roles",
            api_group="rbac.authorization.k8s.io",
            request_object={"kind": "Role", "rules": list(rules)},
        )

    def test_cluster_admin_binding(self) -> None:
        """Binding cluster-admin is critical and names the subjects."""
        finding = audit.map_audit_event(self.binding("cluster-admin"))
        assert ("cluster_admin_binding", Severity.CRITICAL) == (
            finding.event_type,
            finding.severity,
        )
        assert "subject User/bob" in finding.details["reasons"]

    def test_other_binding_is_rbac_change(self) -> None:
        """Binding another role is an ordinary rbac_change."""
        finding = audit.map_audit_event(self.binding("view"))
        assert ("rbac_change", Severity.MEDIUM) == (finding.event_type, finding.severity)

    def test_namespaced_role_named_cluster_admin(self) -> None:
        """A Role that merely shares the name is not cluster-admin."""
        assert "rbac_change" == outcome(self.binding("cluster-admin", kind="Role"))

    @pytest.mark.parametrize(
        "rule",
        [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["deletecollection"]},
        ],
    )
    @pytest.mark.parametrize("verb", ["create", "update", "patch"])
    def test_wildcard_roles(self, rule: dict[str, Any], verb: str) -> None:
        """Wildcards, pods/exec and secret writes make rbac_wildcard."""
        finding = audit.map_audit_event(self.role(rule, verb=verb))
        assert ("rbac_wildcard", Severity.HIGH) == (finding.event_type, finding.severity)

    def test_read_only_role_is_rbac_change(self) -> None:
        """A narrow read role is an ordinary rbac_change."""
        rule = {"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": ["get", "list"]}
        assert "rbac_change" == outcome(self.role(rule))

    def test_delete_role_is_rbac_change(self) -> None:
        """Deleting a role is an rbac_change."""
        assert "rbac_change" == outcome(self.role(verb="delete"))

    def test_reading_rbac_is_no_rule(self) -> None:
        """Listing roles is not a finding."""
        assert "Ignored:no_rule" == outcome(self.role(verb="list"))

    def test_other_group_named_roles(self) -> None:
        """A custom resource also called "roles" is not RBAC."""
        evt = event(resource="roles", api_group="example.com", verb="delete")
        assert "Ignored:no_rule" == outcome(evt)

    def test_group_from_uri_when_apigroup_missing(self) -> None:
        """Old events without objectRef.apiGroup still count via the request URI."""
        evt = self.binding("cluster-admin")
        del evt["objectRef"]["apiGroup"]
        evt["requestURI"] = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
        assert "cluster_admin_binding" == outcome(evt)


class TestSecretWrite:
    """Secret writes are medium, high in kube-system."""

    @pytest.mark.parametrize("verb", ["create", "update", "patch", "delete"])
    def test_secret_writes(self, verb: str) -> None:
        """Every write verb matches at medium."""
        finding = audit.map_audit_event(event(verb=verb, resource="secrets"))
        assert ("secret_write", Severity.MEDIUM) == (finding.event_type, finding.severity)

    def test_kube_system_is_high(self) -> None:
        """A secret write in kube-system is high."""
        finding = audit.map_audit_event(event(resource="secrets", namespace="kube-system"))
        assert (Severity.HIGH, "kube-system") == (finding.severity, finding.namespace)

    @pytest.mark.parametrize("verb", ["get", "list", "watch"])
    def test_secret_reads_are_no_rule(self, verb: str) -> None:
        """Reading secrets is not secret_write."""
        assert "Ignored:no_rule" == outcome(event(verb=verb, resource="secrets", code=200))


class TestSensitiveConfigmap:
    """ConfigMaps carrying credentials are sensitive_configmap."""

    def configmap(self, verb: str = "create", **content: Any) -> dict[str, Any]:
        obj = {"kind": "ConfigMap", "metadata": {"name": "web"}, **content}
        return event(verb=verb, resource="configmaps", request_object=obj)

    @pytest.mark.parametrize(
        "content",
        [
            {"data": {"DB_PASSWORD": "x"}},
            {"data": {"github-token": "x"}},
            {"data": {"apiKey": "x"}},
            {"data": {"app.ini": "[db]\npasswd = hunter2\n"}},
            {"data": {"settings.json": '{"api_key": "abc"}'}},
            {"data": {"cfg": "AWS_SECRET_ACCESS_KEY=abc"}},
            {"data": {"tls": "-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n"}},
            {"data": {"k": "-----BEGIN PRIVATE KEY-----\nMIIE...\n"}},
            {"binaryData": {"client-secret.bin": "AAAA"}},
        ],
    )
    @pytest.mark.parametrize("verb", ["create", "update", "patch"])
    def test_credentials(self, content: dict[str, Any], verb: str) -> None:
        """Credential-like keys or values match, whatever their case."""
        finding = audit.map_audit_event(self.configmap(verb, **content))
        assert ("sensitive_configmap", Severity.MEDIUM) == (finding.event_type, finding.severity)

    @pytest.mark.parametrize(
        "content",
        [
            {"data": {"ui.properties": "color.good=purple\nallow.textmode=true\n"}},
            {"data": {"manifest.yaml": "volumes:\n- secret:\n    secretName: tls\n"}},
            {"data": {}},
            {},
        ],
    )
    def test_ordinary_configmaps(self, content: dict[str, Any]) -> None:
        """Ordinary settings, and a mere mention of a Secret, are not findings."""
        assert "Ignored:no_rule" == outcome(self.configmap(**content))

    def test_value_never_in_details(self) -> None:
        """The reasons name the key, never the credential itself."""
        finding = audit.map_audit_event(self.configmap(data={"cfg": "password = hunter2"}))
        assert "hunter2" not in json.dumps(dict(finding.details))
        assert "hunter2" not in finding.message
        assert ["data key cfg holds a credential-like setting (password)"] == (
            finding.details["reasons"]
        )

    def test_delete_is_no_rule(self) -> None:
        """Deleting a ConfigMap is not judged for its content."""
        assert "Ignored:no_rule" == outcome(self.configmap("delete", data={"password": "x"}))


class TestAnonymousAndForbidden:
    """Anonymous requests that succeed are high; 403s are low."""

    @pytest.mark.parametrize(
        ("user", "groups"),
        [("system:anonymous", ["system:unauthenticated"]), ("someone", ["system:unauthenticated"])],
    )
    def test_anonymous_success(self, user: str, groups: list[str]) -> None:
        """A successful unauthenticated request is anonymous_access."""
        evt = event(verb="list", resource="pods", name=None, code=200, user=user, groups=groups)
        finding = audit.map_audit_event(evt)
        assert ("anonymous_access", Severity.HIGH) == (finding.event_type, finding.severity)

    def test_anonymous_forbidden(self) -> None:
        """A failing anonymous request is not anonymous_access but forbidden_request on 403."""
        evt = event(verb="list", name=None, code=403, user="system:anonymous")
        finding = audit.map_audit_event(evt)
        assert ("forbidden_request", Severity.LOW) == (finding.event_type, finding.severity)

    def test_anonymous_unauthorized(self) -> None:
        """A failing anonymous request that is not 403 matches nothing."""
        evt = event(verb="list", name=None, code=401, user="system:anonymous")
        assert "Ignored:no_rule" == outcome(evt)

    def test_missing_code_at_response_started(self) -> None:
        """No response code yet counts as not failed (anonymous exec also matches)."""
        evt = event(subresource="exec", stage="ResponseStarted", code=None, user="system:anonymous")
        finding = audit.map_audit_event(evt)
        assert "pod_exec" == finding.event_type
        assert ["anonymous_access"] == finding.details["alsoMatched"]

    @pytest.mark.parametrize("path", ["/healthz", "/livez/ping", "/readyz", "/version/"])
    def test_public_info_probes(self, path: str) -> None:
        """Anonymous health and version probes allowed by default are not findings."""
        evt = event(verb="get", code=200, user="system:anonymous", requestURI=path)
        del evt["objectRef"]
        assert "Ignored:no_rule" == outcome(evt)

    def test_anonymous_non_resource_url(self) -> None:
        """Other anonymous non-resource requests are findings named by their path."""
        evt = event(verb="get", code=200, user="system:anonymous", requestURI="/metrics?x=1")
        del evt["objectRef"]
        finding = audit.map_audit_event(evt)
        assert "anonymous_access" == finding.event_type
        assert finding.resource is None
        assert "/metrics" == finding.identity[-1]

    def test_forbidden_request(self) -> None:
        """Any 403 is a low forbidden_request."""
        finding = audit.map_audit_event(event(verb="get", code=403, user="bob"))
        assert ("forbidden_request", Severity.LOW) == (finding.event_type, finding.severity)


class TestServicesAndNamespaces:
    """NodePort services and namespace lifecycle."""

    def service(self, service_type: str, verb: str = "create") -> dict[str, Any]:
        obj = {"kind": "Service", "spec": {"type": service_type}}
        return event(verb=verb, resource="services", request_object=obj)

    def test_nodeport_create(self) -> None:
        """Creating a NodePort service is low nodeport_service."""
        finding = audit.map_audit_event(self.service("NodePort"))
        assert ("nodeport_service", Severity.LOW) == (finding.event_type, finding.severity)

    @pytest.mark.parametrize(("kind", "verb"), [("ClusterIP", "create"), ("NodePort", "update")])
    def test_not_nodeport_create(self, kind: str, verb: str) -> None:
        """Other types, and updates, are not nodeport_service."""
        assert "Ignored:no_rule" == outcome(self.service(kind, verb))

    @pytest.mark.parametrize("verb", ["create", "delete"])
    def test_namespace_change(self, verb: str) -> None:
        """Creating or deleting a Namespace is an operations finding on a cluster-scoped object."""
        evt = event(verb=verb, resource="namespaces", namespace="team-a", name="team-a")
        finding = audit.map_audit_event(evt)
        assert ("namespace_change", Severity.LOW, Category.OPERATIONS) == (
            finding.event_type,
            finding.severity,
            finding.category,
        )
        assert ResourceRef(api_version="v1", kind="Namespace", name="team-a") == (finding.resource)

    def test_namespace_update_is_no_rule(self) -> None:
        """Updating a Namespace is not namespace_change."""
        assert "Ignored:no_rule" == outcome(event(verb="update", resource="namespaces"))


class TestMostSevere:
    """A request matching several rules is reported as the most severe (ties: table order)."""

    def test_critical_beats_high(self) -> None:
        """An anonymous cluster-admin binding is cluster_admin_binding."""
        obj = {"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}
        evt = event(
            resource="rolebindings",
            api_group="rbac.authorization.k8s.io",
            user="system:anonymous",
            request_object=obj,
        )
        finding = audit.map_audit_event(evt)
        assert "cluster_admin_binding" == finding.event_type
        assert ["rbac_change", "anonymous_access"] == finding.details["alsoMatched"]

    def test_high_beats_low(self) -> None:
        """A forbidden exec is still pod_exec."""
        evt = event(subresource="exec", stage="ResponseStarted", code=403)
        assert "pod_exec" == outcome(evt)

    def test_tie_goes_to_table_order(self) -> None:
        """An anonymous privileged pod is privileged_pod (earlier in the table than anonymous)."""
        evt = event(user="system:anonymous", request_object=pod(hostPID=True))
        assert "privileged_pod" == outcome(evt)

    def test_kube_system_secret_beats_configmap_order(self) -> None:
        """A kube-system secret write by anonymous ties at high; secret_write comes first."""
        evt = event(resource="secrets", namespace="kube-system", user="system:anonymous")
        finding = audit.map_audit_event(evt)
        assert ("secret_write", Severity.HIGH) == (finding.event_type, finding.severity)


class TestIdentity:
    """The Observation name follows rule, user, verb and object, not request instance data."""

    def base(self) -> dict[str, Any]:
        return event(resource="secrets", name="db")

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("auditID", "99999999-0000-0000-0000-000000000000"),
            ("stageTimestamp", "2030-01-01T00:00:00Z"),
            ("requestReceivedTimestamp", "2030-01-01T00:00:00Z"),
            ("sourceIPs", ["192.0.2.7"]),
            ("userAgent", "curl/8"),
            ("requestURI", "/api/v1/namespaces/default/secrets?fieldManager=x"),
            ("responseStatus", {"code": 200}),
            ("annotations", {"authorization.k8s.io/decision": "allow"}),
        ],
    )
    def test_volatile_fields(self, key: str, value: object) -> None:
        """Per-request fields do not change the name."""
        changed = {**self.base(), key: value}
        assert audit.map_audit_event(self.base()).name == audit.map_audit_event(changed).name

    @pytest.mark.parametrize(
        "overrides",
        [
            {"user": "mallory"},
            {"verb": "delete"},
            {"name": "other"},
            {"namespace": "other"},
            {"resource": "configmaps", "request_object": {"data": {"token": "x"}}},
        ],
    )
    def test_identity_fields(self, overrides: dict[str, Any]) -> None:
        """Another user, verb, object or rule is another finding."""
        base_kwargs: dict[str, Any] = {"resource": "secrets", "name": "db"}
        other = audit.map_audit_event(event(**{**base_kwargs, **overrides}))
        assert audit.map_audit_event(self.base()).name != other.name

    def test_identity_tuple(self) -> None:
        """The identity is (rule, user, verb, resource, subresource, namespace, name)."""
        evt = event(subresource="exec", stage="ResponseStarted")
        assert ("pod_exec", "alice", "create", "pods", "exec", "default", "web") == (
            audit.map_audit_event(evt).identity
        )

    def test_generated_pods_share_identity(self) -> None:
        """Pods created from one generateName are one finding whatever name the server picked."""

        def created(name: str) -> dict[str, Any]:
            obj = pod(hostPID=True)
            obj["metadata"] = {"generateName": "web-"}
            stored = copy.deepcopy(obj)
            stored["metadata"]["name"] = name
            return event(name=None, request_object=obj, responseObject=stored)

        first = audit.map_audit_event(created("web-aaaaa"))
        second = audit.map_audit_event(created("web-bbbbb"))
        assert first.name == second.name
        assert "web-" == first.identity[-1]


class TestJudgeReturnsWhatMapRaises:
    """`judge_audit_event` (the intake's form) and `map_audit_event` give one verdict: the same
    finding, or a Skip whose reason and message are the Ignored's; Rejected is raised by both."""

    def verdicts(self, evt: object, **kwargs: Any) -> tuple[object, object]:
        try:
            judged: object = audit.judge_audit_event(evt, **kwargs)
        except rejection.Rejected as rejected:
            judged = ("Rejected", rejected.reason, str(rejected))
        else:
            if isinstance(judged, rejection.Skip):
                judged = ("Ignored", judged.reason, judged.describe())
        try:
            mapped: object = audit.map_audit_event(evt, **kwargs)
        except (rejection.Ignored, rejection.Rejected) as error:
            mapped = (type(error).__name__, error.reason, str(error))
        return judged, mapped

    def test_fixture_events_and_routine_ones(self) -> None:
        cases: list[object] = [
            *payloads.audit_events(include_malformed=True),
            event(verb="get", subresource="log", code=200),
            event(resource="secrets", stage="RequestReceived", code=None),
            "text",
        ]
        for case in cases:
            for stages in (audit.STREAMING_AT_ANY, frozenset({"ResponseStarted"})):
                judged, mapped = self.verdicts(case, streaming_judged_at=stages)
                if isinstance(judged, Finding):
                    assert isinstance(mapped, Finding)
                    assert judged.name == mapped.name
                else:
                    assert judged == mapped

    def test_a_request_no_rule_matches_is_returned_not_raised(self) -> None:
        judged = audit.judge_audit_event(event(verb="get", subresource="log", code=200))
        assert isinstance(judged, rejection.Skip)
        assert "no_rule" == judged.reason
        assert judged.describe().startswith("no audit rule matches get pods/log")
