"""Following one kind of object in one namespace: list, then watch from the list's version.

:class:`ResourceWatcher` is a small informer: it lists the objects that match a label
selector, hands each to a callback, then watches from the list's ``resourceVersion`` with
bookmarks, reconnecting from the last version it saw when the server ends the stream. When
that version is too old (410 Gone, as an answer or as an ``ERROR`` event) it lists again and
reports which objects exist now (``on_relist``), so that deletions missed in between are
noticed. Other failures are retried with a growing delay (capped at 30 s).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from trial_runner.kubernetes._api import GoneError, KubeApi, KubeApiError

__all__ = ["ResourceWatcher"]

log = logging.getLogger("katib.kubernetes")

#: ``on_event(type, object)``: ADDED, MODIFIED, DELETED (listed objects come as ADDED).
EventCallback = Callable[[str, dict[str, Any]], None]
#: ``on_relist(keys, listed_at)``: the ``(namespace, name)`` of the objects that exist after a
#: (re)list started at the monotonic time ``listed_at``.
RelistCallback = Callable[[set[tuple[str, str]], float], None]


class ResourceWatcher:
    """Lists and watches one kind in one namespace (None: every namespace) in a thread.

    Args:
        api: The connection.
        api_version, kind: What to watch.
        namespace: Where (None: cluster-wide).
        label_selector: Which objects.
        on_event: Called in the watcher's thread for each object.
        on_relist: Called after every list (the first included) with the names found.
        timeout_seconds: How long one watch request lasts before it is renewed.
    """

    def __init__(
        self,
        api: KubeApi,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None,
        on_event: EventCallback,
        on_relist: RelistCallback | None = None,
        timeout_seconds: int = 300,
    ) -> None:
        self.api = api
        self.api_version = api_version
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.on_event = on_event
        self.on_relist = on_relist
        self.timeout_seconds = timeout_seconds
        self.resource_version = ""
        self.lists = 0  # how many times it listed (tests: a 410 makes it list again)
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._responses: list[Any] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        where = self.namespace or "all namespaces"
        self._thread = threading.Thread(
            target=self._run, name=f"watch {self.kind} in {where}", daemon=True
        )
        self._thread.start()

    def wait_synced(self, timeout: float) -> bool:
        """Wait for the first list to be handed over."""
        return self._synced.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        for response in list(self._responses):
            # Closing a response that another thread reads blocks until the read ends; shutting
            # its socket down ends the read at once.
            sock = getattr(getattr(response, "connection", None), "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                if not self.resource_version:
                    self._list()
                self._watch()
                delay = 0.5
            except GoneError:
                log.info("%s watch: resourceVersion %s expired; listing again",
                         self.kind, self.resource_version)
                self.resource_version = ""
            except KubeApiError as e:
                if self._stop.is_set():
                    return
                log.warning("%s watch: %s (retrying in %.1fs)", self.kind, e, delay)
                if e.status in (400, 401, 403, 404):
                    self.resource_version = ""  # list again: the error may be about it
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except Exception:  # noqa: BLE001 - a bug in a callback must not end the watch
                log.exception("%s watch: unexpected error", self.kind)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _list(self) -> None:
        started = time.monotonic()
        items, version = self.api.list_objects(
            self.api_version, self.kind, self.namespace, label_selector=self.label_selector
        )
        self.lists += 1
        for item in items:
            self.on_event("ADDED", item)
        if self.on_relist is not None:
            keys = {
                (str((i.get("metadata") or {}).get("namespace") or ""),
                 str((i.get("metadata") or {}).get("name")))
                for i in items
            }
            self.on_relist(keys, started)
        self.resource_version = version
        self._synced.set()

    def _watch(self) -> None:
        self._responses.clear()
        for kind, obj in self.api.watch(
            self.api_version,
            self.kind,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            timeout_seconds=self.timeout_seconds,
            stop=self._stop,
            response_box=self._responses,
        ):
            version = (obj.get("metadata") or {}).get("resourceVersion")
            if version:
                self.resource_version = str(version)
            if kind == "BOOKMARK":
                continue
            self.on_event(kind, obj)
