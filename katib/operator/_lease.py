"""Leader election with a ``coordination.k8s.io`` Lease: one acting operator at a time.

The algorithm is client-go's: a candidate reads the Lease; if another holder renewed it
within ``leaseDurationSeconds`` *as observed by this candidate's own clock* (the time it
last saw the record change, never the holder's timestamps, so clocks need not agree), it
waits; otherwise it writes itself in as holder with the Lease's resourceVersion, so that of
two candidates only one update succeeds (the other gets 409 Conflict). The leader renews
every ``retry_period``; if it cannot renew for ``renew_deadline`` it has lost the lease and
must stop acting at once (the operator exits). Stopping cleanly releases the lease so that
a waiting replica takes over within ``retry_period``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from trial_runner.kubernetes import KubeApi, KubeApiError

log = logging.getLogger("katib.operator")

API_VERSION = "coordination.k8s.io/v1"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Holds the Lease ``namespace/name`` for ``identity``.

    Args:
        api: The connection.
        namespace, name: The Lease.
        identity: This replica (host name and a random part).
        lease_duration: Seconds a holder's lease lasts without renewal.
        renew_deadline: Seconds the leader keeps trying to renew before giving up.
        retry_period: Seconds between attempts (and between renewals).
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._observed: dict[str, Any] | None = None  # the Lease's spec as last read
        self._observed_at = 0.0  # monotonic time it last changed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_leader = False

    # Acquiring ---------------------------------------------------------------------------------

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until this replica holds the lease (True), or ``stop`` is set (False)."""
        stop = stop or self._stop
        waited = False
        while not stop.is_set():
            if self._try():
                log.info("became the leader (Lease %s/%s, %s)", self.namespace, self.name,
                         self.identity)
                self.is_leader = True
                return True
            if not waited:
                holder = (self._observed or {}).get("holderIdentity")
                log.info("waiting for the Lease %s/%s, held by %s", self.namespace, self.name,
                         holder)
                waited = True
            stop.wait(self.retry_period)
        return False

    def _try(self) -> bool:
        """One attempt to take or renew the lease."""
        try:
            lease = self.api.get(API_VERSION, "Lease", self.namespace, self.name)
        except KubeApiError as e:
            log.warning("cannot read the Lease: %s", e)
            return False
        now = _now()
        if lease is None:
            spec = self._spec(now, now, 0)
            body: dict[str, Any] = {
                "apiVersion": API_VERSION,
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": spec,
            }
            try:
                self.api.create(body, self.namespace)
            except KubeApiError as e:
                if e.status != 409:
                    log.warning("cannot create the Lease: %s", e)
                return False
            self._see(spec)
            return True
        spec = dict(lease.get("spec") or {})
        self._see(spec)
        holder = spec.get("holderIdentity") or ""
        mine = holder == self.identity
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = time.monotonic() - self._observed_at > duration
        if holder and not mine and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        acquired = spec.get("acquireTime") if mine else now
        new_spec = self._spec(str(acquired or now), now, transitions)
        body = {**lease, "spec": new_spec}
        try:
            self.api.request("PUT", self.api.path(API_VERSION, "Lease", self.namespace,
                                                  self.name), body)
        except KubeApiError as e:
            if e.status != 409:
                log.warning("cannot update the Lease: %s", e)
            return False
        self._see(new_spec)
        return True

    def _spec(self, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "acquireTime": acquired,
            "renewTime": renewed,
            "leaseTransitions": transitions,
        }

    def _see(self, spec: dict[str, Any]) -> None:
        if spec != self._observed:
            self._observed = dict(spec)
            self._observed_at = time.monotonic()

    # Holding -----------------------------------------------------------------------------------

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew the lease in a thread; call ``on_lost`` if it cannot be renewed in time."""

        def renew() -> None:
            last = time.monotonic()
            while not self._stop.wait(self.retry_period):
                if self._try():
                    last = time.monotonic()
                    continue
                holder = (self._observed or {}).get("holderIdentity")
                if holder not in (None, "", self.identity) or (
                    time.monotonic() - last > self.renew_deadline
                ):
                    self.is_leader = False
                    log.error("lost the Lease %s/%s (holder now: %s)", self.namespace,
                              self.name, holder)
                    on_lost()
                    return

        self._thread = threading.Thread(target=renew, name="katib-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and give the lease up, so that another replica takes it at once."""
        self._stop.set()
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = self.api.get(API_VERSION, "Lease", self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            lease["spec"]["renewTime"] = _now()
            self.api.request(
                "PUT", self.api.path(API_VERSION, "Lease", self.namespace, self.name), lease
            )
            log.info("released the Lease %s/%s", self.namespace, self.name)
        except KubeApiError as e:
            log.warning("cannot release the Lease: %s", e)
