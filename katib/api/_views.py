"""Response bodies: the CLI's JSON shapes (``katib.views``) plus what the API adds.

Lists are Katib-style ``List`` objects whose ``metadata.continue`` is the cursor for the next
page; experiments add ``status.archived``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from katib._time import rfc3339
from katib.records import ExperimentRecord, TrialRecord, TrialState
from katib.storage import Storage, TokenRecord
from katib.views import experiment_json, list_json


def experiment_view(
    record: ExperimentRecord,
    counts: Mapping[TrialState, int],
    best: TrialRecord | None,
    archived: bool,
) -> dict[str, Any]:
    body = experiment_json(record, counts, best)
    body["status"]["archived"] = archived
    return body


def one_experiment_view(storage: Storage, record: ExperimentRecord) -> dict[str, Any]:
    return experiment_view(
        record,
        storage.count_trials(record.id),
        storage.best_trial(record),
        bool(storage.archived_ids([record.id])),
    )


def experiments_view(storage: Storage, records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """Views of a page of experiments with a fixed number of queries, whatever its size."""
    ids = [r.id for r in records]
    counts = storage.count_trials_many(ids)
    best = storage.best_trials(records)
    archived = storage.archived_ids(ids)
    return [experiment_view(r, counts[r.id], best[r.id], r.id in archived) for r in records]


def page(items: Sequence[dict[str, Any]], cursor: int | None) -> dict[str, Any]:
    """A List whose ``metadata.continue`` is the cursor to pass as ``after`` next time.

    The cursor is the id of the page's last item (or the ``after`` the page was asked with,
    when it is empty), so a live view that polls with it gets only what is new; a page shorter
    than its limit means there is nothing more for now.
    """
    body = list_json(items)
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "metadata": {"continue": None if cursor is None else str(cursor)},
        "items": body["items"],
    }


def token_view(token: TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "namespace": token.namespace,
        "role": token.role,
        "createdAt": rfc3339(token.created_at),
        "revokedAt": rfc3339(token.revoked_at),
    }
