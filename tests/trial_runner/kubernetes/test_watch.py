"""ResourceWatcher relists after 410 Gone and notices what vanished meanwhile, through the
official client (discovery included) against a fake apiserver over HTTP.

A 410 is hard to provoke end to end: the test apiserver's watch cache holds its whole short
history. Here the fake answers the first watch with an ERROR 410 event, the second with a
410 answer, the third with a stream that ends (the server's timeout), then events.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from trial_runner.kubernetes import KubeApi, ResourceWatcher

GONE = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired",
        "code": 410}


def job(name: str, rv: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": name,
                         "labels": {"katib.kubeflow.org/trial": name}}}


class FakeApiserver(BaseHTTPRequestHandler):
    lists = 0
    watches: list[str] = []
    selectors: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, code: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        query = parse_qs(url.query)
        cls = type(self)
        discovery = {
            "/version": {"major": "1", "minor": "37", "gitVersion": "v1.37.2"},
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
            "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
            "/apis/batch/v1": {"kind": "APIResourceList", "groupVersion": "batch/v1",
                               "resources": [{"name": "jobs", "singularName": "job",
                                              "namespaced": True, "kind": "Job",
                                              "verbs": ["create", "get", "list", "watch"]}]},
        }
        if url.path in discovery:
            self._send(200, discovery[url.path])
            return
        assert url.path == "/apis/batch/v1/namespaces/ns/jobs", url.path
        cls.selectors.append(query.get("labelSelector", [""])[0])
        if query.get("watch") != ["true"]:
            cls.lists += 1
            rv = str(cls.lists * 10)
            # The first list has two trials' Jobs; after the 410s one was deleted unseen.
            items = [job("t-1", rv), job("t-2", rv)] if cls.lists == 1 else [job("t-1", rv)]
            self._send(200, {"kind": "JobList", "metadata": {"resourceVersion": rv},
                             "items": items})
            return
        rv = query["resourceVersion"][0]
        cls.watches.append(rv)
        if rv == "10":
            event = {"type": "ERROR", "object": {**GONE, "message": "too old resource version"}}
            self._send(200, (json.dumps(event) + "\n").encode())
        elif rv == "20":
            self._send(410, {**GONE, "message": "expired"})
        elif rv == "30":
            bookmark = {"type": "BOOKMARK", "object": {"kind": "Job", "apiVersion": "batch/v1",
                                                       "metadata": {"resourceVersion": "35"}}}
            self._send(200, (json.dumps(bookmark) + "\n").encode())
        else:
            event = {"type": "MODIFIED", "object": job("t-1", "36")}
            self._send(200, (json.dumps(event) + "\n").encode())
            time.sleep(0.2)


def test_relists_after_410_and_reports_vanished_objects() -> None:
    from kubernetes import client

    FakeApiserver.lists, FakeApiserver.watches, FakeApiserver.selectors = 0, [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApiserver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_port}"
    api = KubeApi(client.ApiClient(configuration))
    events: list[str] = []
    relists: list[set[tuple[str, str]]] = []
    done = threading.Event()

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        events.append(f"{kind} {obj['metadata']['name']}@{obj['metadata']['resourceVersion']}")
        if kind == "MODIFIED":
            done.set()

    watcher = ResourceWatcher(api, "batch/v1", "Job", "ns",
                              label_selector="katib.kubeflow.org/trial", on_event=on_event,
                              on_relist=lambda names, at: relists.append(names))
    watcher.start()
    try:
        assert done.wait(30), (events, FakeApiserver.watches)
    finally:
        watcher.stop()
        server.shutdown()
    # list@10, watch 10 → ERROR 410, list@20, watch 20 → 410 answer, list@30, watch 30 →
    # bookmark 35 then the stream ends, watch 35 (from the bookmark, no list) → MODIFIED.
    assert FakeApiserver.lists == 3
    assert FakeApiserver.watches[:4] == ["10", "20", "30", "35"]
    # t-2 vanished: the caller is told.
    assert relists == [{("ns", "t-1"), ("ns", "t-2")}, {("ns", "t-1")}, {("ns", "t-1")}]
    assert events[:4] == ["ADDED t-1@10", "ADDED t-2@10", "ADDED t-1@20", "ADDED t-1@30"]
    assert events[-1] == "MODIFIED t-1@36"
    assert set(FakeApiserver.selectors) == {"katib.kubeflow.org/trial"}
    assert api.counter.total >= 7  # discovery, lists and watches are all counted
