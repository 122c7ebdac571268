"""Response bodies: the CLI's JSON shapes (``katib.views``) plus what the API adds.

Lists are Katib-style ``List`` objects whose ``metadata.continue`` is the cursor for the next
page; experiments add ``status.archived``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from katib import service
from katib.records import ExperimentRecord
from katib.storage import Storage
from katib.views import list_json, token_view

__all__ = ["experiments_view", "one_experiment_view", "page", "token_view"]


def one_experiment_view(storage: Storage, record: ExperimentRecord) -> dict[str, Any]:
    return service.experiment_view(storage, record)


def experiments_view(storage: Storage, records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """Views of a page of experiments with a fixed number of queries, whatever its size."""
    return service.experiments_view(storage, records)


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
