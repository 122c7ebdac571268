"""The Kubernetes API as this project uses it: the official client's dynamic client on dicts.

:class:`KubeApi` connects with a kubeconfig or the in-cluster ServiceAccount, finds any kind
through the dynamic client's discovery (batch Jobs, Kubeflow training jobs, TrainJobs, any
custom kind), and does plain JSON requests: objects stay dicts (``serialize=False``), which
works the same with the client's old (≤ 30) and new (pydantic-based) generated models and
costs no model conversion. Every request is counted (:class:`RequestCounter`), which is how
the benchmark measures API requests per trial.

Errors come out as :class:`KubeApiError` with the HTTP status, the apiserver's reason and
message; :meth:`KubeApiError.temporary` says whether retrying may help.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from katib.errors import KatibError, TemporaryError

__all__ = [
    "GoneError",
    "KubeApi",
    "KubeApiError",
    "RequestCounter",
    "UnknownKindError",
]


class KubeApiError(KatibError):
    """The apiserver refused a request (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if status else message)

    @property
    def temporary(self) -> bool:
        """Whether the same request may succeed later (no answer, 429, 5xx)."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class GoneError(KubeApiError):
    """410 Gone: the watch's resourceVersion is too old; list again."""


class UnknownKindError(KatibError):
    """The cluster serves no such kind (its CRD is not installed)."""


class RequestCounter:
    """Counts API requests by method and resource path (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_kind: Counter[str] = Counter()

    def add(self, method: str, path: str) -> None:
        key = f"{method} {_path_kind(path)}"
        with self._lock:
            self.by_kind[key] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_kind.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.by_kind)


def _path_kind(path: str) -> str:
    """``/apis/batch/v1/namespaces/x/jobs/y/status?..`` → ``batch/v1 jobs/status``."""
    path = path.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "/"
    if parts[0] == "api":
        group, rest = parts[1:2], parts[2:]
    elif parts[0] == "apis":
        group, rest = parts[1:3], parts[3:]
    else:
        return "/" + parts[0]
    if len(rest) >= 2 and rest[0] == "namespaces":
        rest = rest[2:]
    kind = rest[0] if rest else "(discovery)"
    if len(rest) >= 3:
        kind += "/" + rest[2]
    return f"{'/'.join(group)} {kind}"


class KubeApi:
    """One connection to a cluster's apiserver.

    Args:
        api_client: A configured ``kubernetes.client.ApiClient``.
        counter: Where requests are counted (a new counter by default).
    """

    def __init__(self, api_client: Any, *, counter: RequestCounter | None = None) -> None:
        self.api_client = api_client
        self.counter = counter or RequestCounter()
        self._lock = threading.Lock()
        self._dynamic: Any = None
        self._resources: dict[tuple[str, str], Any] = {}
        original = api_client.call_api

        def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            self.counter.add(method, url.split("://", 1)[-1].partition("/")[2])
            return original(method, url, *args, **kwargs)

        api_client.call_api = counted

    @classmethod
    def connect(cls, kubeconfig: str | None = None, *, context: str | None = None) -> KubeApi:
        """Connect with ``kubeconfig`` (or ``KUBECONFIG`` / ``~/.kube/config``), or with the
        pod's ServiceAccount when running in a cluster and no kubeconfig is given.

        Raises:
            KatibError: no usable configuration.
        """
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not (
                os.environ.get("KUBECONFIG")
            ):
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            else:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
        except Exception as e:  # noqa: BLE001 - the client raises many kinds for a bad config
            raise KatibError(f"cannot load the Kubernetes configuration: {e}") from e
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self.api_client.close()

    # Discovery -------------------------------------------------------------------------------

    @property
    def dynamic(self) -> Any:
        if self._dynamic is not None:
            return self._dynamic
        with self._lock:
            if self._dynamic is None:
                from kubernetes.dynamic import DynamicClient

                # A private discovery cache: the default one is shared by every process on
                # the machine that talks to the same URL.
                fd, cache = tempfile.mkstemp(prefix="katib-discovery-", suffix=".json")
                os.close(fd)
                os.unlink(cache)
                try:
                    self._dynamic = DynamicClient(  # type: ignore[no-untyped-call]
                        self.api_client, cache_file=cache
                    )
                except Exception as e:  # noqa: BLE001 - translated below
                    raise _translate(e) from e
            return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        """The dynamic client's resource for a kind (discovered once, then cached).

        Raises:
            UnknownKindError: the cluster does not serve it.
        """
        key = (api_version, kind)
        found = self._resources.get(key)
        if found is not None:
            return found
        from kubernetes.dynamic.exceptions import ResourceNotFoundError  # only when discovering

        dynamic = self.dynamic
        try:
            found = dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            # Maybe installed since discovery ran: look once more, afresh.
            try:
                dynamic.resources.invalidate_cache()
                found = dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                raise UnknownKindError(
                    f"the cluster serves no kind {kind} in {api_version} (is its"
                    " CustomResourceDefinition, or the operator that installs it, there?)"
                ) from None
        except Exception as e:  # noqa: BLE001 - discovery errors are API errors
            raise _translate(e) from e
        self._resources[key] = found
        return found

    def path(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        resource = self.resource(api_version, kind)
        prefix = "/api/" if "/" not in api_version else "/apis/"
        path = prefix + api_version
        if namespace is not None and resource.namespaced:
            path += f"/namespaces/{quote(namespace)}"
        path += f"/{resource.name}"
        if name is not None:
            path += f"/{quote(name)}"
        if subresource:
            path += f"/{subresource}"
        return path

    # Requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        timeout: float = 30.0,
        **params: Any,
    ) -> Any:
        """One request; the decoded JSON answer.

        Raises:
            KubeApiError: a refusal, or no answer (status 0).
        """
        extra = {} if content_type is None else {"content_type": content_type}
        try:
            response = self.dynamic.request(
                method,
                path,
                body=body,
                serialize=False,
                _request_timeout=timeout,
                **extra,
                **params,
            )
            data = response.data
        except Exception as e:  # noqa: BLE001 - translated into one error type
            raise _translate(e) from e
        return json.loads(data) if data else None

    def create(self, body: Mapping[str, Any], namespace: str) -> dict[str, Any]:
        path = self.path(body["apiVersion"], body["kind"], namespace)
        return dict(self.request("POST", path, dict(body)))

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            return dict(self.request("GET", self.path(api_version, kind, namespace, name)))
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        uid: str | None = None,
    ) -> bool:
        """Delete an object (and, through the garbage collector, what it owns).

        Returns:
            False if it did not exist (or is another object of that name: ``uid``).
        """
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", self.path(api_version, kind, namespace, name), body)
        except KubeApiError as e:
            if e.status in (404, 409):
                return False
            raise
        return True

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        patch_type: str = "application/merge-patch+json",
    ) -> dict[str, Any]:
        path = self.path(api_version, kind, namespace, name, subresource)
        return dict(self.request("PATCH", path, body, content_type=patch_type))

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object (pages of 500), and the list's resourceVersion to watch from."""
        path = self.path(api_version, kind, namespace)
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            answer = self.request(
                "GET", path, label_selector=label_selector, limit=500, _continue=token
            )
            items.extend(answer.get("items") or [])
            meta = answer.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        stop: threading.Event | None = None,
        response_box: list[Any] | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events ``(type, object)`` from ``resource_version``, with bookmarks.

        Ends when the server closes the stream (after ``timeout_seconds``).
        ``response_box`` receives the open response, so another thread can close it.

        Raises:
            GoneError: the resourceVersion is too old (as an answer or as an ERROR event).
            KubeApiError: any other refusal.
        """
        path = self.path(api_version, kind, namespace)
        try:
            response = self.dynamic.request(
                "GET",
                path,
                serialize=False,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                label_selector=label_selector,
                timeout_seconds=timeout_seconds,
                _request_timeout=(10, timeout_seconds + 30),
            )
        except Exception as e:  # noqa: BLE001 - translated
            raise _translate(e) from e
        if response_box is not None:
            response_box.append(response)
        try:
            for line in _iter_lines(response):
                if stop is not None and stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                kind_of = event.get("type", "")
                obj = event.get("object") or {}
                if kind_of == "ERROR":
                    code = int(obj.get("code") or 0)
                    error = GoneError if code == 410 else KubeApiError
                    raise error(code, str(obj.get("reason", "")), str(obj.get("message", "")))
                yield kind_of, obj
        except KubeApiError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken stream: the caller watches again
            if stop is not None and stop.is_set():
                return
            raise KubeApiError(0, "StreamError", f"watch stream broke: {e}") from e
        finally:
            try:
                response.close()
                response.release_conn()
            except Exception:  # noqa: BLE001, S110 - closing a dead stream
                pass


def _iter_lines(response: Any) -> Iterator[str]:
    from kubernetes.watch.watch import iter_resp_lines

    return iter_resp_lines(response)  # type: ignore[no-any-return,no-untyped-call]


def _translate(error: Exception) -> KubeApiError:
    """One error type for every failure of a request."""
    status = getattr(error, "status", None)
    if isinstance(status, int) and status:
        body = getattr(error, "body", None) or b""
        reason = str(getattr(error, "reason", "") or "")
        message = str(error)
        try:
            payload = json.loads(body)
            reason = str(payload.get("reason") or reason)
            message = str(payload.get("message") or message)
        except (ValueError, TypeError, AttributeError):
            pass
        cls = GoneError if status == 410 else KubeApiError
        return cls(status, reason, message)
    return KubeApiError(0, "Unreachable", f"no answer from the apiserver: {error}")


def is_temporary(error: BaseException) -> bool:
    """Whether retrying the request may help."""
    if isinstance(error, KubeApiError):
        return error.temporary
    return isinstance(error, TemporaryError | OSError)
