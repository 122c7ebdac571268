"""Response bodies the API adds to the CLI's JSON shapes (``katib.views``): paged lists.

Lists are Katib-style ``List`` objects whose ``metadata.continue`` is the cursor for the next
page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from katib.views import list_json


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
