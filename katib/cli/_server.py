"""``katib server`` and ``katib token create|list|revoke``.

The server serves the REST API and runs every unfinished experiment of its database in the
background; token commands work on the database, or through a server with an admin token,
like the other commands.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import signal
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from katib.cli import (
    EXIT_USAGE,
    HelpGroup,
    _connect,
    _err,
    _fail,
    _logs_root,
    _out,
    _storage,
    _user_errors,
)
from katib.cli._options import backend_options, db_option

if TYPE_CHECKING:
    from trial_runner import Launcher

_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@db_option
@click.option(
    "--launcher",
    "launcher_name",
    type=click.Choice(["local", "kubernetes"]),
    default="local",
    show_default=True,
    help="Where trials run: local processes, or workloads in the experiment's namespace of a"
    " Kubernetes cluster.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="(kubernetes) kubeconfig to use; default: KUBECONFIG or ~/.kube/config, or the"
    " pod's ServiceAccount in a cluster.",
)
@click.option(
    "--api-url",
    default=None,
    help="URL at which trials reach this server to push metrics (KATIB_API_URL); default: the"
    " address it listens on. In a cluster: its Service, e.g. http://katib-server.katib-system:8080.",
)
@click.option(
    "--sidecar-image",
    default="katib-local:latest",
    show_default=True,
    help="(kubernetes) image of the metrics-collector sidecar (the Dockerfile of this project).",
)
@click.option(
    "--access-log",
    default=None,
    metavar="FILE",
    help="Append one line per HTTP request to FILE ('-': standard error). Default: no access "
    "log.",
)
@_user_errors
def server(
    host: str,
    port: int,
    db: str | None,
    launcher_name: str,
    kubeconfig: str | None,
    api_url: str | None,
    sidecar_image: str,
    access_log: str | None,
) -> None:
    """Serve the REST API and run experiments in the background, in every namespace.

    The first start prints an admin token once (or takes KATIB_ADMIN_TOKEN). SIGTERM or
    Ctrl-C stops it cleanly: running trials are killed and run again at the next start;
    with --launcher kubernetes they keep running on the cluster and the next start follows
    them again. Requests are not logged unless --access-log says where.
    """
    import uvicorn

    from katib.api import create_app, ensure_admin_token
    from katib.controller import BackgroundController

    _setup_logging()
    launcher = _launcher(launcher_name, kubeconfig, sidecar_image)
    storage = _storage(db)
    created = ensure_admin_token(storage)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, a response written in two parts waits
    # for the client's delayed ACK (about 40 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        _fail(f"cannot listen on {host}:{port}: {e.strerror or e}", EXIT_USAGE)
    bound = sock.getsockname()[1]
    url = f"http://{_reachable(host)}:{bound}"
    if created:
        _err.print(
            f"admin token (shown only this once; keep it safe): {created}",
            markup=False,
            highlight=False,
        )
    controller = BackgroundController(
        storage, launcher, logs_root=_logs_root(), api_url=api_url or url
    )
    app = create_app(storage, controller=controller)
    config = uvicorn.Config(
        app,
        log_config=_uvicorn_logging(access_log),
        access_log=access_log is not None,
        timeout_graceful_shutdown=10,
    )
    _err.print(
        f"katib server listening on {url} (dashboard: {url}/, API docs: {url}/docs)",
        markup=False,
    )
    # Uvicorn turns SIGTERM into a graceful shutdown (which stops the controller), then
    # raises the signal again under the handler it found: make that one a clean exit.
    previous = signal.signal(signal.SIGTERM, _ignore)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        close = getattr(launcher, "close", None)
        if close is not None:
            close()
    _err.print("katib server stopped", markup=False)


def _launcher(name: str, kubeconfig: str | None, sidecar_image: str) -> Launcher:
    if name == "local":
        from katib.storage import katib_home
        from trial_runner.local import LocalProcessLauncher
        from trial_runner.pipelines import with_pipeline_runs

        return with_pipeline_runs(LocalProcessLauncher(katib_home()))
    try:
        from trial_runner.kubernetes import KubeApi, KubernetesLauncher, SidecarSettings
    except ImportError as e:
        _fail(f"--launcher kubernetes needs the kubernetes client: pip install"
              f" 'katib-local[k8s]' ({e})", EXIT_USAGE)
    from trial_runner.pipelines import with_pipeline_runs

    api = KubeApi.connect(kubeconfig)
    cluster = KubernetesLauncher(api, sidecar=SidecarSettings(image=sidecar_image))
    return with_pipeline_runs(cluster)


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def _reachable(host: str) -> str:
    """The host trials use to reach the server (a wildcard address is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _uvicorn_logging(access_log: str | None) -> dict[str, Any]:
    """Uvicorn's logging: its warnings and errors on stderr (the line above says where the
    server listens), and the access log only where --access-log says."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["uvicorn"]["level"] = "WARNING"
    config["loggers"]["uvicorn.error"]["level"] = "WARNING"
    access = config["loggers"]["uvicorn.access"]
    if access_log is None:
        access.update(handlers=[], level="WARNING")
        return config
    config["formatters"]["access"]["fmt"] = (
        '%(asctime)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    )
    if access_log == "-":
        config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    else:
        config["handlers"]["access"] = {
            "formatter": "access",
            "class": "logging.FileHandler",
            "filename": str(Path(access_log).expanduser()),
        }
        config["formatters"]["access"]["use_colors"] = False
    return config


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("katib")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


# tokens --------------------------------------------------------------------------------------


@click.group(cls=HelpGroup)
def token() -> None:
    """Manage API tokens (in the database, or through a --server with an admin token)."""


@token.command("create")
@click.option("--namespace", "-n", required=True, help="Namespace the role applies to.")
@click.option(
    "--role", type=click.Choice(["owner", "editor", "viewer"]), required=True, help="Role."
)
@click.option("--name", default=None, help="A name to recognise the token by.")
@backend_options
@_user_errors
def token_create(
    namespace: str, role: str, name: str | None, db: str | None, server: str | None,
    token: str | None,
) -> None:
    """Create a token; prints it once on stdout (it is stored hashed)."""
    if len(namespace) > 63 or not _NAMESPACE_RE.match(namespace):
        _fail(f"--namespace {namespace!r}: a namespace is a lower case RFC 1123 label", EXIT_USAGE)
    with _connect(db, server, token) as backend:
        made = backend.create_token(name or f"{role}@{namespace}", namespace, role)
    _err.print(f"token #{made['id']} ({role} in {namespace}); shown only this once:", markup=False)
    click.echo(made["token"])


@token.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option(
    "-o", "--output", "output_format", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="Output format.",
)
@backend_options
@_user_errors
def token_list(
    include_revoked: bool, output_format: str, db: str | None, server: str | None,
    token: str | None,
) -> None:
    """List tokens (never their secrets)."""
    from katib.cli._render import tokens_table

    with _connect(db, server, token) as backend:
        tokens = backend.list_tokens(include_revoked=include_revoked)
    if output_format == "json":
        click.echo(json.dumps({"items": tokens}, indent=2))
        return
    _out().print(tokens_table(tokens))


@token.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(min=1))
@backend_options
@_user_errors
def token_revoke(token_id: int, db: str | None, server: str | None, token: str | None) -> None:
    """Revoke token ID: requests with it are refused from now on."""
    with _connect(db, server, token) as backend:
        revoked = backend.revoke_token(token_id)
    click.echo(f"token #{revoked['id']} ({revoked['name']}) revoked")
