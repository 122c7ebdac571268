"""``katib operator``: run Experiment custom resources of a cluster (see katib.operator)."""

from __future__ import annotations

import click

from katib.cli import EXIT_INTERRUPTED, EXIT_USAGE, _fail, _user_errors
from katib.cli._options import db_option


@click.command()
@click.option("--namespace", "-n", default=None,
              help="Only Experiments of this namespace (default: every namespace).")
@db_option
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="kubeconfig to use; default: KUBECONFIG or ~/.kube/config, or the pod's"
              " ServiceAccount in a cluster.")
@click.option("--lease-namespace", default="katib-system", show_default=True,
              help="Namespace of the leader Lease and of the push key Secret.")
@click.option("--lease-name", default="katib-operator", show_default=True,
              help="Name of the Lease that elects one active operator among replicas.")
@click.option("--lease-duration", type=click.FloatRange(min=1), default=15.0,
              show_default=True, help="Seconds a leader's Lease lasts without renewal.")
@click.option("--listen", default="0.0.0.0:8080", show_default=True, metavar="HOST:PORT",
              help="Where the push endpoint (trials' KATIB_API_URL) listens (port 0: any).")
@click.option("--api-url", default=None,
              help="URL trials push metrics to; default: the listening address. In a"
              " cluster: the operator's Service, e.g. http://katib-operator.katib-system:8080.")
@click.option("--sidecar-image", default="katib-local:latest", show_default=True,
              help="Image of the metrics-collector sidecar (the Dockerfile of this project).")
@_user_errors
def operator(
    namespace: str | None,
    db: str | None,
    kubeconfig: str | None,
    lease_namespace: str,
    lease_name: str,
    lease_duration: float,
    listen: str,
    api_url: str | None,
    sidecar_image: str,
) -> None:
    """Run Experiment custom resources: trials as cluster workloads, Katib's status.

    One replica acts at a time (a Lease); others wait. SIGTERM stops it cleanly: trial
    workloads keep running and the next leader follows them. Trials whose template is a
    Kubeflow Pipelines Run go to the KFP API named by KFP_HOST (bearer token: KFP_TOKEN).
    """
    try:
        from katib.operator import Operator, OperatorSettings
    except ImportError as e:
        _fail(f"katib operator needs the kubernetes client: pip install 'katib-local[k8s]'"
              f" ({e})", EXIT_USAGE)
    from katib.cli._server import _setup_logging
    from katib.controller import Interrupted

    host, _, port_text = listen.rpartition(":")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        _fail(f"--listen {listen!r}: expected HOST:PORT", EXIT_USAGE)
    _setup_logging()
    settings = OperatorSettings(
        namespace=namespace,
        db_url=db,
        kubeconfig=kubeconfig,
        lease_namespace=lease_namespace,
        lease_name=lease_name,
        lease_duration=lease_duration,
        renew_deadline=min(10.0, lease_duration * 2 / 3),
        retry_period=min(2.0, lease_duration / 5),
        push_host=host or "0.0.0.0",
        push_port=int(port_text),
        push_url=api_url,
        sidecar_image=sidecar_image,
    )
    try:
        Operator(settings).run()
    except Interrupted:
        raise SystemExit(EXIT_INTERRUPTED) from None
