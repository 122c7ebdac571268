"""The options shared by the ``katib`` commands: where the experiments are, and output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

db_option = click.option(
    "--db",
    envvar="KATIB_DB",
    default=None,
    metavar="URL",
    help="Database URL or SQLite path (default: $KATIB_HOME/katib.db; env KATIB_DB).",
)
server_option = click.option(
    "--server",
    envvar="KATIB_SERVER",
    default=None,
    metavar="URL",
    help="Work through the katib server at URL instead of the database (env KATIB_SERVER).",
)
token_option = click.option(
    "--token",
    envvar="KATIB_TOKEN",
    default=None,
    metavar="T",
    help="API token for --server (env KATIB_TOKEN).",
)


def backend_options(func: F) -> F:
    """``--db``, ``--server`` and ``--token``: where the experiments are."""
    return db_option(server_option(token_option(func)))


namespace_option = click.option(
    "--namespace", "-n", default="default", show_default=True, help="Namespace of the experiment."
)
output_option = click.option(
    "-o",
    "--output",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)

#: Output formats of ``katib get``, as kubectl has them (``name``: one name a line).
GET_FORMATS = ("table", "wide", "json", "yaml", "csv", "name")


def output_formats(*formats: str, what: str = "") -> Callable[[F], F]:
    """``-o/--output`` with the given formats (the first is the default)."""
    descriptions = {
        "table": "a table",
        "wide": "a table with more columns",
        "json": "Katib's JSON (docs/cli.md)",
        "yaml": "the same as YAML",
        "csv": "comma-separated values with a header line",
        "name": "only the names, one a line",
    }
    listed = "; ".join(f"{f}: {descriptions[f]}" for f in formats)
    return click.option(
        "-o",
        "--output",
        "output_format",
        type=click.Choice(formats),
        default=formats[0],
        show_default=True,
        help=f"Output format{what} ({listed}).",
    )


watch_option = click.option(
    "--watch",
    "-w",
    is_flag=True,
    help="After the list, print each object again whenever it changes, until the experiment "
    "has finished (or Ctrl-C).",
)
