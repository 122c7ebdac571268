"""A loopback stand-in for the Kubeflow Pipelines API server (``/apis/v2beta1``).

KFP's API server needs MySQL, object storage, ML Metadata and Argo on a cluster; none of
that can run here. This server implements the endpoints :class:`trial_runner.pipelines.KfpApi`
uses, with the paths, query parameters, field names, enums and error body (``{"code",
"message"}``) of KFP's published v2beta1 OpenAPI (``backend/api/v2beta1/swagger``:
run.swagger.json, pipeline.swagger.json, pipeline.upload.swagger.json,
artifact.swagger.json), and refuses what KFP refuses: a run without ``display_name``, a
pipeline version that does not exist, a parameter the pipeline does not declare or of the
wrong type (KFP's driver checks ``parameterType``), a pipeline name taken (409).

What a run *does* is scripted by the test: ``behave(params) -> Script``. A run goes
PENDING → RUNNING (on the first read) → its script's end on a later read; a ``hang`` run
stays RUNNING until ``:terminate`` (CANCELING, then CANCELED on the next read). Metric
artifacts follow artifact.swagger.json's ``Artifact`` (type ``Metric``, ``name``,
``number_value``; ``system.Metrics`` with ``metadata``), linked from
``run_details.task_details[].outputs``.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml

_TYPES: dict[str, tuple[type, ...]] = {
    "NUMBER_DOUBLE": (int, float),
    "NUMBER_INTEGER": (int,),
    "STRING": (str,),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


@dataclass
class Script:
    """How a run ends: ``succeed`` (with metrics, possibly none), ``fail``, ``cancel`` (as if
    a person cancelled it in KFP's UI) or ``hang`` (runs until terminated).

    ``push`` is called once while the run is RUNNING, as a step of the pipeline would push
    (the test gets the run's parameters).
    """

    end: str = "succeed"
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""
    reads_until_end: int = 2
    push: Callable[[dict[str, Any]], None] | None = None
    #: ``metadata``: one system.Metrics artifact; ``metric``: one Metric artifact per value.
    artifact_style: str = "metric"


@dataclass
class _Run:
    body: dict[str, Any]
    script: Script
    reads: int = 0
    pushed: bool = False


class FakeKfp:
    """The server's state; ``url`` once started."""

    def __init__(self, behave: Callable[[dict[str, Any]], Script]) -> None:
        self.behave = behave
        self.url = ""
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, _Run] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.uploads = 0
        self.terminated: list[str] = []
        #: Answer the next N requests with 503 (a KFP API server restarting).
        self.unavailable = 0
        self.token: str | None = None

    def add_pipeline(self, name: str, spec: dict[str, Any]) -> tuple[str, str]:
        """A pipeline with one version, as if uploaded before; (pipeline id, version id)."""
        with self.lock:
            pipeline_id, version_id = self._store(name, spec)
        return pipeline_id, version_id

    def _store(self, name: str, spec: dict[str, Any]) -> tuple[str, str]:
        pipeline_id = f"p-{next(self.ids)}"
        version_id = f"v-{next(self.ids)}"
        self.pipelines[pipeline_id] = {
            "pipeline_id": pipeline_id, "display_name": name, "created_at": _now(),
        }
        self.versions[pipeline_id] = [{
            "pipeline_id": pipeline_id, "pipeline_version_id": version_id,
            "display_name": name, "created_at": _now(), "pipeline_spec": spec,
        }]
        return pipeline_id, version_id

    def run_bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.body for r in self.runs.values()]

    # Handling -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: Any,
               body: bytes) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            if self.unavailable > 0:
                self.unavailable -= 1
                return 503, _error(14, "the KFP API server is restarting")
        if self.token and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, _error(16, "Unauthenticated")
        prefix = "/apis/v2beta1"
        if not path.startswith(prefix):
            return 404, _error(5, f"no route {path}")
        route = path[len(prefix):]
        with self.lock:
            if method == "POST" and route == "/pipelines/upload":
                return self._upload(query, headers, body)
            if method == "GET" and route.startswith("/pipelines/names/"):
                name = unquote(route.removeprefix("/pipelines/names/"))
                for pipeline in self.pipelines.values():
                    if pipeline["display_name"] == name:
                        return 200, pipeline
                return 404, _error(5, f"pipeline {name} not found")
            parts = route.strip("/").split("/")
            if method == "GET" and len(parts) == 3 and parts[0] == "pipelines" and (
                parts[2] == "versions"
            ):
                versions = self.versions.get(parts[1])
                if versions is None:
                    return 404, _error(5, f"pipeline {parts[1]} not found")
                ordered = sorted(versions, key=lambda v: v["created_at"],
                                 reverse="desc" in (query.get("sort_by") or [""])[0])
                size = int((query.get("page_size") or ["100"])[0])
                return 200, {"pipeline_versions": ordered[:size], "total_size": len(versions)}
            if method == "GET" and len(parts) == 4 and parts[0] == "pipelines":
                for version in self.versions.get(parts[1], []):
                    if version["pipeline_version_id"] == parts[3]:
                        return 200, version
                return 404, _error(5, f"pipeline version {parts[3]} not found")
            if method == "GET" and route == "/runs":
                return self._list_runs(query)
            if method == "POST" and route == "/runs":
                return self._create_run(json.loads(body or b"{}"), query)
            if route.startswith("/runs/") and route.endswith(":terminate") and method == "POST":
                run_id = route.removeprefix("/runs/").removesuffix(":terminate")
                run = self.runs.get(run_id)
                if run is None:
                    return 404, _error(5, f"run {run_id} not found")
                self.terminated.append(run_id)
                if run.body["state"] not in ("SUCCEEDED", "FAILED", "CANCELED"):
                    self._set(run, "CANCELING")
                return 200, {}
            if method == "GET" and route.startswith("/runs/"):
                run_id = route.removeprefix("/runs/")
                run = self.runs.get(run_id)
                if run is None:
                    return 404, _error(5, f"run {run_id} not found")
                return 200, self._advance(run)
            if method == "GET" and route.startswith("/artifacts/"):
                artifact = self.artifacts.get(route.removeprefix("/artifacts/"))
                if artifact is None:
                    return 404, _error(5, "artifact not found")
                return 200, artifact
        return 404, _error(5, f"no route {method} {path}")

    def _upload(self, query: dict[str, list[str]], headers: Any, body: bytes
                ) -> tuple[int, Any]:
        ctype = headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            return 400, _error(3, "the upload must be multipart/form-data")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        files = {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }
        package = files.get("uploadfile")
        if not package:
            return 400, _error(3, "Failed to read pipeline from file: uploadfile missing")
        try:
            spec = next(d for d in yaml.safe_load_all(package) if d)
        except (yaml.YAMLError, StopIteration):
            return 400, _error(3, "Failed to parse the pipeline spec")
        if not isinstance(spec, dict) or "root" not in spec:
            return 400, _error(3, "Invalid pipeline spec: no root")
        name = (query.get("name") or [spec.get("pipelineInfo", {}).get("name", "pipeline")])[0]
        if any(p["display_name"] == name for p in self.pipelines.values()):
            return 409, _error(6, f"Failed to create a pipeline: name {name} already exists")
        self.uploads += 1
        pipeline_id, _ = self._store(name, spec)
        return 200, self.pipelines[pipeline_id]

    def _create_run(self, body: dict[str, Any], query: dict[str, list[str]]) -> tuple[int, Any]:
        if not body.get("display_name"):
            return 400, _error(3, "Invalid input error: run display_name is required")
        ref = body.get("pipeline_version_reference") or {}
        spec = body.get("pipeline_spec")
        if spec is None:
            version = next(
                (v for v in self.versions.get(ref.get("pipeline_id", ""), [])
                 if v["pipeline_version_id"] == ref.get("pipeline_version_id")), None,
            )
            if version is None:
                return 404, _error(5, f"pipeline version {ref} not found")
            spec = version["pipeline_spec"]
        declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
        params = (body.get("runtime_config") or {}).get("parameters") or {}
        for name, value in params.items():
            if name not in declared:
                return 400, _error(3, f"parameter {name} is not declared by the pipeline")
            expected = _TYPES.get(declared[name].get("parameterType", ""), (object,))
            if not isinstance(value, expected) or (
                isinstance(value, bool) and bool not in expected
            ):
                return 400, _error(
                    3, f"input parameter {name} requires type"
                    f" {declared[name].get('parameterType')}, got {value!r}")
        run_id = f"run-{next(self.ids)}"
        stored = {
            **body,
            "run_id": run_id,
            "experiment_id": body.get("experiment_id") or (query.get("experiment_id") or [""])[0]
            or "default-experiment",
            "storage_state": "AVAILABLE",
            "created_at": _now(),
            "state": "PENDING",
            "state_history": [{"update_time": _now(), "state": "PENDING"}],
        }
        self.runs[run_id] = _Run(stored, self.behave(params))
        return 200, stored

    def _list_runs(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """ListRuns: ``filter`` is KFP's JSON Filter; EQUALS on run fields is what is used."""
        runs = [r.body for r in self.runs.values()]
        if query.get("filter"):
            try:
                predicates = json.loads(query["filter"][0])["predicates"]
            except (ValueError, KeyError, TypeError):
                return 400, _error(3, "Invalid input error: cannot parse the filter")
            for p in predicates:
                if p.get("operation") != "EQUALS" or "string_value" not in p:
                    return 400, _error(3, f"unsupported predicate {p}")
                runs = [r for r in runs if str(r.get(p["key"])) == p["string_value"]]
        for key in ("experiment_id", "namespace"):
            if query.get(key):
                runs = [r for r in runs if r.get(key, query[key][0]) == query[key][0]]
        runs.sort(key=lambda r: (r["created_at"], r["run_id"]),
                  reverse="desc" in (query.get("sort_by") or [""])[0])
        size = int((query.get("page_size") or ["20"])[0])
        return 200, {"runs": json.loads(json.dumps(runs[:size])), "total_size": len(runs)}

    def _advance(self, run: _Run) -> dict[str, Any]:
        run.reads += 1
        state = run.body["state"]
        script = run.script
        if state == "PENDING":
            self._set(run, "RUNNING")
        elif state == "CANCELING":
            self._set(run, "CANCELED")
        elif state == "RUNNING":
            if script.push is not None and not run.pushed:
                run.pushed = True
                params = dict(run.body["runtime_config"].get("parameters") or {})
                self.lock.release()
                try:
                    script.push(params)
                finally:
                    self.lock.acquire()
            if script.end != "hang" and run.reads > script.reads_until_end:
                self._end(run)
        return json.loads(json.dumps(run.body))

    def _end(self, run: _Run) -> None:
        script = run.script
        if script.end == "fail":
            self._set(run, "FAILED")
            run.body["run_details"] = {"task_details": [{
                "run_id": run.body["run_id"], "task_id": "t-train", "display_name": "train",
                "state": "FAILED",
                "error": {"code": 2, "message": script.message or "exit status 1"},
            }]}
            run.body["error"] = {"code": 2, "message": script.message or "task train failed"}
        elif script.end == "cancel":
            self._set(run, "CANCELED")
        else:
            outputs: dict[str, dict[str, list[str]]] = {}
            ids = list(self._artifacts(script))
            if ids:
                outputs["metrics"] = {"artifact_ids": ids}
            self._set(run, "SUCCEEDED")
            run.body["finished_at"] = _now()
            run.body["run_details"] = {"task_details": [
                {"run_id": run.body["run_id"], "task_id": "t-pre", "display_name": "preprocess",
                 "state": "SUCCEEDED", "end_time": _now(), "outputs": {}},
                {"run_id": run.body["run_id"], "task_id": "t-train", "display_name": "train",
                 "state": "SUCCEEDED", "end_time": _now(), "outputs": outputs},
            ]}

    def _artifacts(self, script: Script) -> Iterator[str]:
        if not script.metrics:
            return
        if script.artifact_style == "metadata":
            artifact_id = str(next(self.ids))
            self.artifacts[artifact_id] = {
                "artifact_id": artifact_id, "name": "metrics", "type": "Metric",
                "metadata": {"display_name": "metrics", **script.metrics},
                "created_at": _now(),
            }
            yield artifact_id
            return
        for name, value in script.metrics.items():
            artifact_id = str(next(self.ids))
            self.artifacts[artifact_id] = {
                "artifact_id": artifact_id, "name": name, "type": "Metric",
                "number_value": value, "created_at": _now(),
            }
            yield artifact_id

    def _set(self, run: _Run, state: str) -> None:
        run.body["state"] = state
        run.body.setdefault("state_history", []).append({"update_time": _now(), "state": state})


def serve(fake: FakeKfp) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _do(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = fake.handle(self.command, url.path, parse_qs(url.query),
                                         self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _do  # noqa: N815

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    return httpd, thread


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: A compiled KFP pipeline's spec, reduced to what the server and the launcher read.
def pipeline_spec(**parameters: str) -> dict[str, Any]:
    return {
        "pipelineInfo": {"name": "tune-me"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
        "components": {},
        "deploymentSpec": {"executors": {}},
        "root": {
            "dag": {"tasks": {}},
            "inputDefinitions": {
                "parameters": {k: {"parameterType": v} for k, v in parameters.items()}
            },
        },
    }
