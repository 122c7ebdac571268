"""``katib export`` / ``katib import``, ``katib get namespaces``, ``katib namespace limit`` and
``katib token rotate``: data that moves between databases, and what admins set."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

import click
from rich.table import Table

from katib.cli import EXIT_USAGE, HelpGroup, _connect, _fail, _out, _storage, _user_errors, cli
from katib.cli._get import get
from katib.cli._options import backend_options, db_option
from katib.cli._server import token


@cli.command("export")
@click.argument("names", nargs=-1)
@click.option("--namespace", "-n", default="default", show_default=True,
              help="Namespace of the NAMES.")
@click.option("--all", "everything", is_flag=True, help="Every experiment of every namespace.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file instead of standard output.")
@db_option
@_user_errors
def export(names: Sequence[str], namespace: str, everything: bool, output: str | None,
           db: str | None) -> None:
    """Write experiments NAMES (or --all) with their trials, observation logs, algorithm
    state and events as JSON lines, for `katib import` into any database (e.g. SQLite to
    PostgreSQL: `katib export --all --db A | katib import - --db B`)."""
    from katib.storage import export_lines

    if not names and not everything:
        _fail("name the experiments to export, or give --all", EXIT_USAGE)
    storage = _storage(db)
    records = (
        storage.list_experiments()
        if everything
        else [storage.get_experiment(namespace, name) for name in names]
    )
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        for line in export_lines(storage, records):
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"exported {len(records)} experiment(s) to {output}", err=True)


@cli.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--namespace", "-n", default=None,
              help="Import into this namespace instead of each experiment's own.")
@db_option
@_user_errors
def import_(file: TextIO, namespace: str | None, db: str | None) -> None:
    """Store the experiments of FILE (`-`: standard input), written by `katib export`.
    An experiment that exists in this database is refused; nothing of it is changed."""
    from katib.storage import import_lines, parse_lines

    source = getattr(file, "name", "<stdin>")
    items = parse_lines(file, source)
    done = import_lines(_storage(db), items, source, namespace=namespace)
    for ns, name in done:
        click.echo(f"experiment {ns}/{name} imported")


@get.command("namespaces")
@backend_options
@click.option("--output", "-o", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True, help="Output format.")
@_user_errors
def get_namespaces(db: str | None, server: str | None, token: str | None,
                   output_format: str) -> None:
    """List namespaces: experiments, tokens, running trials and the running-trial limit."""
    with _connect(db, server, token) as backend:
        items = backend.list_namespaces()
    if output_format == "json":
        click.echo(json.dumps({"items": items}, indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "EXPERIMENTS", "TOKENS", "RUNNING", "LIMIT"):
        table.add_column(column)
    for ns in items:
        limit = ns.get("maxRunningTrials")
        table.add_row(ns["name"], str(ns["experiments"]), str(ns["tokens"]),
                      str(ns.get("runningTrials", 0)), "-" if limit is None else str(limit))
    _out().print(table)


@cli.group("namespace", cls=HelpGroup)
def namespace_group() -> None:
    """Settings of a namespace (admins)."""


@namespace_group.command("limit")
@click.argument("name")
@click.argument("max_running_trials", metavar="N")
@backend_options
@_user_errors
def namespace_limit(name: str, max_running_trials: str, db: str | None, server: str | None,
                    token: str | None) -> None:
    """At most N trials of namespace NAME run at once on a server (`none`: no limit), so
    that one team cannot starve the others."""
    value = None if max_running_trials.lower() == "none" else max_running_trials
    if value is not None and (not value.isdigit() or int(value) < 1):
        _fail(f"N must be a whole number of at least 1, or none; got {max_running_trials!r}",
              EXIT_USAGE)
    with _connect(db, server, token) as backend:
        ns = backend.set_namespace_limit(name, None if value is None else int(value))
    limit = ns.get("maxRunningTrials")
    click.echo(f"namespace {name}: " + ("no limit" if limit is None
                                        else f"at most {limit} running trials"))


@token.command("rotate")
@click.argument("token_id", metavar="ID", type=click.IntRange(min=1))
@backend_options
@_user_errors
def token_rotate(token_id: int, db: str | None, server: str | None, token: str | None) -> None:
    """Replace token ID by a new secret with the same name, role and expiry; the old one is
    refused from now on. The new secret is printed once."""
    with _connect(db, server, token) as backend:
        new = backend.rotate_token(token_id)
    click.echo(new["token"])
    click.echo(f"token #{new['id']} ({new['name']}) replaces #{token_id}; shown only once",
               err=True)
