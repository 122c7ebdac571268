"""Tests of the process node that need no cluster: ``$(VAR)`` expansion, mount path
rewriting, quantities, and the list-then-watch loop's relist on 410 Gone, both with scripted
list/watch functions and through the official client against a fake apiserver over HTTP.

A 410 is hard to provoke end to end: the apiserver's watch cache holds this short-lived
cluster's whole history, so an old resourceVersion is still served."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.cluster.process_node import (
    Gone,
    KubeApi,
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


class _FakeApiserver(BaseHTTPRequestHandler):
    """Answers pod lists and watches the way kube-apiserver does when history expires."""

    lists = 0
    watches: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        assert url.path == "/api/v1/pods"
        cls = type(self)
        if query.get("watch") != ["true"]:
            cls.lists += 1
            rv = str(cls.lists * 10)
            body = {"kind": "PodList", "metadata": {"resourceVersion": rv}, "items": []}
            self._send(200, json.dumps(body).encode())
            return
        rv = query["resourceVersion"][0]
        cls.watches.append(rv)
        gone = {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410}
        if rv == "10":  # 410 as an ERROR event inside a watch stream
            event = {"type": "ERROR", "object": {**gone, "message": "too old resource version"}}
            self._send(200, (json.dumps(event) + "\n").encode())
        elif rv == "20":  # 410 as the answer to the watch request itself
            self._send(410, json.dumps({**gone, "message": "expired"}).encode())
        else:
            event = {"type": "ADDED", "object": _pod("fresh", "31")}
            self._send(200, (json.dumps(event) + "\n").encode())


def test_the_node_lists_again_after_410_through_the_official_client(tmp_path: Path) -> None:
    _FakeApiserver.lists, _FakeApiserver.watches = 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeApiserver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {"server": f"http://127.0.0.1:{server.server_port}"},
                    }
                ],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "fake",
            }
        )
    )
    try:
        api = KubeApi(kubeconfig)
        stop = threading.Event()
        seen: list[str] = []

        def on_event(kind: str, pod: dict[str, Any]) -> None:
            seen.append(f"{kind} {pod['metadata']['name']}")
            stop.set()

        watcher = PodWatcher(
            api.list_pods, api.watch_pods, lambda pods: None, on_event, retry_delay=0.01
        )
        watcher.run(stop)
    finally:
        server.shutdown()
    assert _FakeApiserver.lists == 3
    assert _FakeApiserver.watches == ["10", "20", "30"]
    assert seen == ["ADDED fresh"]
    assert watcher.resource_version == "31"
