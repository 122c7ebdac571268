"""A pool worker: imports one trial script once, then runs its trials one at a time.

:mod:`trial_runner._pool` starts it as ``python [-u] _worker.py FD SCRIPT PID``: run by path, not
as a module of the package, so that it imports nothing but the standard library before the
script does. The script defines ``__katib_trial__(argv, report)``, which is what
``python SCRIPT ARGS`` runs, and which, called with ``report=False``, returns the trial's
metrics (``{name: number}``) instead of reporting them itself.

Each request on the channel (socket ``FD``, one JSON object per line) names a trial's
arguments, environment, folder and log file. For the length of a trial, the log file is the
worker's stdout and stderr (file descriptors 1 and 2, so that output of C code and of child
processes lands there too). The worker answers with the exit status ``python SCRIPT ARGS``
would have had (0, the ``sys.exit`` code, or 1 with the traceback in the log) and the
metrics the entry point returned.

The worker is its own process group: stopping a trial (a kill, a deadline) stops the worker,
which the pool then replaces. It ends itself when the channel closes, and when the process
that started it is gone.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from types import ModuleType
from typing import Any

#: The function a poolable script defines: what ``python SCRIPT ARGS`` calls with ``ARGS``;
#: called as ``ENTRY_POINT(args, False)`` it returns the metrics instead of reporting them.
ENTRY_POINT = "__katib_trial__"
#: The name the script's module gets (it is not ``__main__``: its main block must not run).
MODULE_NAME = "__katib_trial_script__"
_PARENT_POLL = 0.5


def main() -> int:
    fd, script, parent = int(sys.argv[1]), os.path.abspath(sys.argv[2]), int(sys.argv[3])
    # As for ``python SCRIPT``: the script's folder first on the path (not this file's).
    sys.path[0] = os.path.dirname(script)
    channel = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)  # the trial's child processes must not hold the channel
    # The pool's pid comes as an argument: it may be gone before this line runs.
    _watch_parent(parent)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    base_env = dict(os.environ)
    module: ModuleType | None = None
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = channel.recv(65536)
            if not chunk:
                return 0  # the pool closed the channel
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        request = json.loads(line)
        code, metrics, module = _run(request, script, module, base_env, devnull)
        channel.sendall(json.dumps({"exit": code, "metrics": metrics}).encode() + b"\n")
        if module is None:
            return 0  # the script could not be imported: a fresh worker tries again


def _run(
    request: dict[str, Any],
    script: str,
    module: ModuleType | None,
    base_env: dict[str, str],
    devnull: int,
) -> tuple[int, dict[str, float], ModuleType | None]:
    """Run one trial with its output in its log; (exit status, metrics, the script)."""
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    _set_environment(base_env, request["env"])
    argv = [str(a) for a in request["argv"]]
    sys.argv = [script, *argv]
    code = 0
    metrics: dict[str, float] = {}
    try:
        os.chdir(request["cwd"])
        if module is None:
            module = _import(script)
        metrics = _metrics(getattr(module, ENTRY_POINT)(argv, False))
    except SystemExit as e:
        code = _exit_status(e)
    except BaseException as e:  # noqa: BLE001 - as Python itself: the traceback, status 1
        _print_traceback(e)
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    return code, metrics, module


def _metrics(result: Any) -> dict[str, float]:
    if not isinstance(result, dict):
        return {}
    return {str(k): float(v) for k, v in result.items() if isinstance(v, int | float)}


def _import(script: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # dataclasses and pickling look classes up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    if not callable(getattr(module, ENTRY_POINT, None)):
        del sys.modules[MODULE_NAME]
        raise ImportError(f"{script} defines no {ENTRY_POINT}(argv): it cannot run in a pool")
    return module


def _set_environment(base: dict[str, str], extra: dict[str, str]) -> None:
    wanted = {**base, **extra}
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    for key, value in wanted.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _exit_status(e: SystemExit) -> int:
    """The status ``python SCRIPT`` exits with after ``sys.exit(e.code)``."""
    if e.code is None:
        return 0
    if isinstance(e.code, int) and not isinstance(e.code, bool):
        return e.code & 0xFF
    print(e.code, file=sys.stderr)
    return 1


def _print_traceback(e: BaseException) -> None:
    """The traceback Python prints for an uncaught exception, without this module's frames
    and importlib's."""
    tb = e.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code.co_filename in (__file__, "<frozen importlib._bootstrap>",
                                           "<frozen importlib._bootstrap_external>")
    ):
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb)


def _watch_parent(parent: int) -> None:
    """End the worker and what it started once the pool's process is gone (it was killed)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="katib-parent-watch", daemon=True).start()


if __name__ == "__main__":
    # A crash in C code (a segfault) leaves its traceback in the trial's log (fd 2).
    faulthandler.enable(file=sys.__stderr__ or sys.stderr, all_threads=False)
    sys.exit(main())
