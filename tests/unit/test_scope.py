"""The namespace scope: static lists, and a selector's set as the Namespace informer feeds it."""

from __future__ import annotations

from zenwatcher.scope import NamespaceScope
from zenwatcher.settings import Settings


def namespace(name: str) -> dict[str, object]:
    return {"metadata": {"name": name}}


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def namespace_entered(self, namespace: str) -> None:
        self.changes.append(("entered", namespace))

    def namespace_left(self, namespace: str) -> None:
        self.changes.append(("left", namespace))


class TestStatic:
    def test_unsharded_is_the_whole_cluster(self) -> None:
        scope = NamespaceScope.from_settings(Settings.from_env({}))
        assert ((), (), True) == (
            scope.watched(),
            scope.observation_namespaces(),
            scope.admits("anything"),
        )
        assert scope.synced.is_set()

    def test_a_list_and_our_own_namespace(self) -> None:
        env = {"WATCH_NAMESPACE": "a,b", "POD_NAMESPACE": "zen"}
        scope = NamespaceScope.from_settings(Settings.from_env(env))
        assert ("a", "b", "zen") == scope.observation_namespaces()
        assert (True, False) == (scope.admits("a"), scope.admits("c"))


class TestSelector:
    def test_nothing_matching_is_our_namespace_only_never_the_cluster(self) -> None:
        """A selector that matches nothing scopes GC and the budget to POD_NAMESPACE, not to
        every namespace as an empty list would; and it is not synced before its first list."""
        scope = NamespaceScope(pod_namespace="zen", selector="shard=a")
        assert ((), ("zen",), False) == (
            scope.watched(),
            scope.observation_namespaces(),
            scope.admits("zen"),
        )
        assert not scope.synced.is_set()

    async def test_follows_added_deleted_and_relists(self) -> None:
        """ADDED/MODIFIED enter (once), DELETED leaves, a relist drops what it no longer
        lists; listeners hear each change in order."""
        scope = NamespaceScope(pod_namespace="zen", selector="shard=a")
        recorder = Recorder()
        unsubscribe = scope.subscribe(recorder)
        await scope.on_object(namespace("a"))
        await scope.on_object(namespace("b"))
        await scope.on_object(namespace("a"))  # MODIFIED, still matching: no change
        assert ("a", "b") == scope.watched()
        assert ("a", "b", "zen") == scope.observation_namespaces()
        assert scope.admits("b")
        await scope.on_deleted(namespace("b"))
        await scope.on_object(namespace("c"))
        await scope.on_listed(frozenset({("", "c")}))
        assert ("c",) == scope.watched()
        assert [
            ("entered", "a"),
            ("entered", "b"),
            ("left", "b"),
            ("entered", "c"),
            ("left", "a"),
        ] == recorder.changes
        unsubscribe()
        await scope.on_object(namespace("d"))
        assert 5 == len(recorder.changes)
