"""Shell completion of experiment and trial names (click's shell completion).

Commands and options complete through click itself; these callbacks add the names of
experiments and trials, read from the database or the server the command line (or the
environment: ``KATIB_DB``, ``KATIB_SERVER``, ``KATIB_TOKEN``) points at, in its
``--namespace`` when one was typed. Completion never fails loudly: whatever goes wrong
(no database yet, a server that does not answer) completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from click.shell_completion import CompletionItem

#: Most names offered at once (a shell shows them all).
MAX_ITEMS = 200


@contextmanager
def _backend(ctx: click.Context) -> Iterator[Any]:
    from katib.client import connect

    params = ctx.params
    server = params.get("server") or os.environ.get("KATIB_SERVER")
    token = params.get("token") or os.environ.get("KATIB_TOKEN")
    db = params.get("db") or os.environ.get("KATIB_DB")
    if server and not params.get("db"):
        backend = connect(server=server, token=token)
    else:
        backend = connect(db=db)
    try:
        yield backend
    finally:
        backend.close()


def _safely(find: Callable[[click.Context, str], list[CompletionItem]]) -> Any:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
        try:
            return find(ctx, incomplete)[:MAX_ITEMS]
        except Exception:  # noqa: BLE001 - a completion must never print a traceback
            return []

    return complete


def _experiment_names(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    namespace = ctx.params.get("namespace")
    with _backend(ctx) as backend:
        experiments = backend.list_experiments(namespace or None)
    return [
        CompletionItem(e["metadata"]["name"], help=e["status"]["condition"])
        for e in experiments
        if e["metadata"]["name"].startswith(incomplete)
    ]


def _trial_names(ctx: click.Context, incomplete: str) -> list[CompletionItem]:
    namespace = ctx.params.get("namespace")
    items = []
    with _backend(ctx) as backend:
        for e in backend.list_experiments(namespace or None):
            name = e["metadata"]["name"]
            # Trial names start with their experiment's name: skip the others' trials.
            if not (name.startswith(incomplete) or incomplete.startswith(name)):
                continue
            for t in backend.list_trials(e["metadata"]["namespace"], name):
                trial = t["metadata"]["name"]
                if trial.startswith(incomplete):
                    items.append(CompletionItem(trial, help=t["status"]["condition"]))
    return items


#: ``shell_complete=`` of an argument that names an experiment.
experiment_names = _safely(_experiment_names)
#: ``shell_complete=`` of an argument that names a trial.
trial_names = _safely(_trial_names)


def completion_script(shell: str) -> str:
    """The script that enables completion of ``katib`` in ``shell`` (bash, zsh, fish)."""
    from click.shell_completion import get_completion_class

    from katib.cli import cli

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the command's choices are the supported shells
        raise click.BadParameter(f"unsupported shell {shell!r}")
    return cls(cli, {}, "katib", "_KATIB_COMPLETE").source()
