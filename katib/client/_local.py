"""The backend over a database: the rules of :mod:`katib.service`, the views of the API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from katib import service
from katib.client._base import TAIL_BYTES, Backend, BudgetCounts, last_lines
from katib.errors import ConflictError, NotFoundError
from katib.records import ExperimentRecord
from katib.spec import parse_experiment
from katib.storage import Storage, normalize_url
from katib.views import (
    events_json,
    observation_log_json,
    token_view,
    trial_json,
)

#: Most bytes of log one trial_log() call returns.
LOG_CHUNK = 16 * 1024 * 1024


class LocalBackend(Backend):
    """Experiments in a database this process opens (SQLite file or any SQLAlchemy URL).

    Nothing runs here: an experiment runs while ``katib run``, a server or the SDK drives it.
    """

    def __init__(self, storage: Storage, *, url: str = "") -> None:
        self.storage = storage
        self.location = f"database {url}" if url else "database"

    @classmethod
    def open(cls, db: str | None = None) -> LocalBackend:
        """The database ``db`` (default: ``KATIB_DB``, else ``$KATIB_HOME/katib.db``)."""
        return cls(Storage.open(db), url=normalize_url(db) if db else "")

    def close(self) -> None:
        self.storage.close()

    def _experiment(self, namespace: str, name: str) -> ExperimentRecord:
        return self.storage.get_experiment(namespace, name)

    # Experiments --------------------------------------------------------------------------

    def create_experiment(
        self, document: Mapping[str, Any], *, source_dir: str | None = None
    ) -> dict[str, Any]:
        from katib.controller import check_runnable  # here: it loads the algorithms

        exp = parse_experiment(dict(document))
        check_runnable(exp, self.storage)
        record = self.storage.create_experiment(exp, source_dir=source_dir or os.getcwd())
        return service.experiment_view(self.storage, record)

    def get_experiment(self, namespace: str, name: str) -> dict[str, Any]:
        return service.experiment_view(self.storage, self._experiment(namespace, name))

    def list_experiments(
        self, namespace: str | None = None, *, archived: bool = False
    ) -> list[dict[str, Any]]:
        views = service.experiments_view(self.storage, self.storage.list_experiments(namespace))
        return [v for v in views if v["status"]["archived"] == archived]

    def best_trial(self, namespace: str, name: str) -> dict[str, Any]:
        return service.best_view(self.storage, self._experiment(namespace, name))

    def list_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        record = self._experiment(namespace, name)
        return events_json(self.storage.list_events(record.id))

    def stop_experiment(self, namespace: str, name: str) -> bool:
        record = self._experiment(namespace, name)
        return service.stop_experiment(
            self.storage, record, running=service.run_elsewhere(record)
        )

    def delete_experiment(self, namespace: str, name: str) -> None:
        record = self._experiment(namespace, name)
        if service.run_elsewhere(record):
            raise ConflictError(
                f"experiment {namespace}/{name} is running ({record.owner}); "
                f"stop it first with `katib stop {name}`"
            )
        service.delete_experiment(self.storage, record)

    def edit_budget(self, namespace: str, name: str, counts: BudgetCounts) -> dict[str, Any]:
        record = service.change_budget(self.storage, self._experiment(namespace, name), **counts)
        return service.experiment_view(self.storage, record)

    def restart_experiment(
        self, namespace: str, name: str, counts: BudgetCounts
    ) -> dict[str, Any]:
        record = service.restart_experiment(
            self.storage, self._experiment(namespace, name), **counts
        )
        return service.experiment_view(self.storage, record)

    # Trials -------------------------------------------------------------------------------

    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        record = self._experiment(namespace, experiment)
        return [trial_json(t, record.name) for t in self.storage.list_trials(record.id)]

    def get_trial(self, namespace: str, name: str) -> dict[str, Any]:
        trial = self.storage.get_trial(namespace, name)
        return trial_json(trial, self.storage.get_experiment_by_id(trial.experiment_id).name)

    def find_trials(self, name: str) -> list[dict[str, Any]]:
        return [
            trial_json(t, self.storage.get_experiment_by_id(t.experiment_id).name)
            for t in self.storage.find_trials(name)
        ]

    def trial_observations(self, namespace: str, name: str) -> list[dict[str, Any]]:
        trial = self.storage.get_trial(namespace, name)
        log = observation_log_json(trial, self.storage.get_observations(trial.id))
        return list(log["metricLogs"])

    def trial_log(self, namespace: str, name: str, offset: int = 0) -> bytes | None:
        trial = self.storage.get_trial(namespace, name)
        path = service.trial_log_path(self.storage, trial)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(LOG_CHUNK)
        except FileNotFoundError:
            return None

    def log_path(self, namespace: str, name: str) -> Path:
        """Where the trial's output is on this machine (whether or not it exists yet)."""
        return service.trial_log_path(self.storage, self.storage.get_trial(namespace, name))

    def log_tail(self, namespace: str, name: str, lines: int = 10) -> list[str]:
        try:
            with open(self.log_path(namespace, name), "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - TAIL_BYTES))
                return last_lines(f.read(), lines)
        except FileNotFoundError:
            return []

    # Tokens -------------------------------------------------------------------------------

    def create_token(self, name: str, namespace: str, role: str) -> dict[str, Any]:
        record, secret = self.storage.create_token(name, namespace, role)
        return {**token_view(record), "token": secret}

    def list_namespaces(self) -> list[dict[str, Any]]:
        return [_namespace(r) for r in self.storage.list_namespaces()]

    def set_namespace_limit(self, namespace: str, max_running_trials: int | None) -> dict[str, Any]:
        self.storage.set_namespace_limit(namespace, max_running_trials)
        return _namespace(self.storage.list_namespaces([namespace])[0])

    def list_tokens(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        return [token_view(t) for t in self.storage.list_tokens(include_revoked=include_revoked)]

    def rotate_token(self, token_id: int) -> dict[str, Any]:
        try:
            old = self.storage.get_token(token_id)
        except NotFoundError:
            raise NotFoundError(f"token #{token_id} not found") from None
        if old.revoked:
            raise ConflictError(f"token #{token_id} is revoked; create a new one instead")
        new, secret = self.storage.create_token(
            old.name, old.namespace, old.role, expires_at=old.expires_at
        )
        self.storage.revoke_token(token_id)
        return {**token_view(new), "token": secret}

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        try:
            return token_view(self.storage.revoke_token(token_id))
        except NotFoundError:
            raise NotFoundError(f"token #{token_id} not found") from None


def _namespace(record: Any) -> dict[str, Any]:
    return {
        "name": record.name,
        "experiments": record.experiments,
        "tokens": record.tokens,
        "maxRunningTrials": record.max_running_trials,
        "runningTrials": record.running_trials,
    }
