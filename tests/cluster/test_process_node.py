"""Unit tests of the process node's pure parts: ``$(VAR)`` expansion, mount path rewriting,
quantities, and the list-then-watch loop's relist on 410 Gone (no cluster needed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.process_node import (
    Gone,
    PodWatcher,
    expand,
    parse_quantity,
    rewrite_paths,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "a"),
        ("x-$(A)-$(B)", "x-a-b"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$a"),
        ("$(A", "$(A"),
        ("cost$", "cost$"),
        ("$X$(A)", "$Xa"),
        ("", ""),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "b"}) == expected


def test_rewrite_paths_maps_mount_paths_only_where_they_begin_a_path() -> None:
    mounts = {"/katib": "/h/katib", "/katib/data": "/h/data", "/var/log/": "/h/log"}
    assert rewrite_paths("/katib/mnist.log", mounts) == "/h/katib/mnist.log"
    assert rewrite_paths("--log=/katib/x --data /katib/data/y", mounts) == (
        "--log=/h/katib/x --data /h/data/y"
    )
    assert rewrite_paths("/katib", mounts) == "/h/katib"
    assert rewrite_paths("/var/log/a", mounts) == "/h/log/a"
    # Not a mount: a longer name, a path inside another path, a relative path.
    assert rewrite_paths("/katibx/a", mounts) == "/katibx/a"
    assert rewrite_paths("/opt/katib/a", mounts) == "/opt/katib/a"
    assert rewrite_paths("katib/a", mounts) == "katib/a"
    assert rewrite_paths("/katib/a", {}) == "/katib/a"


def test_parse_quantity() -> None:
    assert parse_quantity("500m") == 0.5
    assert parse_quantity("2Gi") == 2 * 2**30
    assert parse_quantity("1e3") == 1000
    assert parse_quantity(4) == 4
    with pytest.raises(ValueError):
        parse_quantity("lots")


def _pod(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": name, "resourceVersion": rv}}


class _FakeApi:
    """A list that answers in order and watches that replay scripted events."""

    def __init__(self, watches: list[list[dict[str, Any]] | Exception]) -> None:
        self.lists = 0
        self.watched_from: list[str] = []
        self._watches = watches

    def list_pods(self) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        return [_pod("a", str(self.lists * 100))], str(self.lists * 100)

    def watch_pods(self, resource_version: str) -> Iterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        script = self._watches.pop(0)
        if isinstance(script, Exception):
            raise script
        yield from script


def test_watch_relists_after_410_in_an_error_event() -> None:
    api = _FakeApi(
        [
            [{"type": "ADDED", "object": _pod("b", "101")}],
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}],
            [{"type": "MODIFIED", "object": _pod("b", "205")}],
        ]
    )
    synced: list[list[str]] = []
    events: list[tuple[str, str]] = []
    watcher = PodWatcher(
        api.list_pods,
        api.watch_pods,
        lambda pods: synced.append([p["metadata"]["name"] for p in pods]),
        lambda kind, pod: events.append((kind, pod["metadata"]["resourceVersion"])),
    )
    watcher.watch_once()  # lists (rv 100), then watches from 100
    assert watcher.resource_version == "101"
    with pytest.raises(Gone):
        watcher.watch_once()  # resumes from 101: a normal end of a watch keeps the rv
    watcher.resource_version = None  # what run() does on Gone
    watcher.watch_once()  # lists again (rv 200) and watches from there
    assert api.watched_from == ["100", "101", "200"]
    assert synced == [["a"], ["a"]]
    assert events == [("ADDED", "101"), ("MODIFIED", "205")]


def test_run_loop_lists_again_on_410_and_on_a_gone_exception() -> None:
    stop = threading.Event()
    api = _FakeApi(
        [
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "150"}}}],
            [{"type": "ERROR", "object": {"kind": "Status", "code": 410}}],
            Gone("410 from the watch request itself"),
            [{"type": "ADDED", "object": _pod("c", "301")}],
        ]
    )
    seen: list[str] = []

    def on_event(kind: str, pod: dict[str, Any]) -> None:
        seen.append(pod["metadata"]["name"])
        stop.set()

    watcher = PodWatcher(api.list_pods, api.watch_pods, lambda pods: None, on_event)
    watcher.run(stop)
    # list@100, watch 100 → bookmark 150, watch 150 → 410, list@200, watch 200 → Gone,
    # list@300, watch 300 → event.
    assert api.lists == 3
    assert api.watched_from == ["100", "150", "200", "300"]
    assert seen == ["c"]
    assert watcher.resource_version == "301"
