"""``python -m trial_runner [options] -- CMD ARGS``: the metrics-collecting trial wrapper.

Inside a container (a Kubernetes trial) it runs the training command, passes its output
through unchanged, collects metrics with the configured collector, pushes them to the
server's observation endpoint in batches, and exits with the command's exit status. Locally
the launcher runs the same collection code in its own process instead.

``python -m trial_runner --sidecar --done-file F [options]`` is the metrics-collector
sidecar that the Kubernetes launcher puts beside a trial's training container (any image):
it collects from the shared file, directory or endpoint until the training command's exit
marker ``F`` appears (:mod:`trial_runner._sidecar`).
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from trial_runner._launch import (
    Ending,
    KillReason,
    MetricsReported,
    TrialEnded,
    TrialEvent,
    TrialStarted,
)
from trial_runner._process import ProcessRunner, ProcessSpec
from trial_runner.metrics import MetricsParser

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trial_runner",
        description="Run a training command, collect its metrics, push them to katib.",
    )
    p.add_argument("--metric-names", required=True,
                   help="comma-separated metrics to collect (objective first)")
    p.add_argument("--metrics-format", action="append", default=None, metavar="REGEX",
                   help="a Katib metricsFormat filter (repeatable); default: Katib's regex")
    p.add_argument("--text-metrics", default="",
                   help="comma-separated metrics whose values may be text (DARTS' genotype)")
    p.add_argument("--collector", default="StdOut",
                   choices=["StdOut", "File", "TensorFlowEvent", "PrometheusMetric"],
                   help="where metrics come from (default: StdOut)")
    p.add_argument("--path", help="metrics file (File) or event directory (TensorFlowEvent)")
    p.add_argument("--url", help="metrics endpoint for PrometheusMetric, e.g. "
                   "http://127.0.0.1:8080/metrics")
    p.add_argument("--format", default="TEXT", choices=["TEXT", "JSON"],
                   help="metrics file format for --collector File")
    p.add_argument("--trial-name", default=os.environ.get("KATIB_TRIAL_NAME"))
    p.add_argument("--namespace", default=os.environ.get("KATIB_NAMESPACE", "default"))
    p.add_argument("--api-url", default=os.environ.get("KATIB_API_URL"),
                   help="server to push to (default: KATIB_API_URL)")
    p.add_argument("--token", default=os.environ.get("KATIB_API_TOKEN"))
    p.add_argument("--no-push", action="store_true", help="collect and print, push nothing")
    p.add_argument("--sidecar", action="store_true",
                   help="run beside the training container: collect until --done-file exists")
    p.add_argument("--done-file", help="(--sidecar) the training command's exit marker")
    p.add_argument("--only-if", action="append", default=[], metavar="ENV=VALUE",
                   help="(--sidecar) collect only if the variable has this value (the pod's"
                   " label, for replicas that share a template); otherwise just wait")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.sidecar:
        return _sidecar(args)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("trial_runner: no command given (use: -- CMD ARGS)", file=sys.stderr)
        return EXIT_USAGE
    if not args.no_push and (not args.api_url or not args.trial_name):
        print("trial_runner: --api-url and --trial-name (or KATIB_API_URL and "
              "KATIB_TRIAL_NAME) are needed to push metrics; use --no-push to only collect",
              file=sys.stderr)
        return EXIT_USAGE
    names = [n for n in args.metric_names.split(",") if n]
    try:
        parser = MetricsParser(names, args.metrics_format, text_metrics=_texts(args))
    except ValueError as e:
        print(f"trial_runner: {e}", file=sys.stderr)
        return EXIT_USAGE
    collectors: list[Any] = []
    parse_line: Any = parser.parse_line
    if args.collector != "StdOut":
        try:
            collectors.append(_collector(args, names))
        except (ValueError, ImportError) as e:
            print(f"trial_runner: {e}", file=sys.stderr)
            return EXIT_USAGE
        parse_line = None
    events: queue.Queue[TrialEvent] = queue.Queue()
    runner = ProcessRunner()
    spec = ProcessSpec(
        argv=command, cwd=os.getcwd(), log_path=Path("/dev/stdout"), append_log=True,
        parse_line=parse_line, collectors=collectors,
    )
    name = args.trial_name or "trial"

    def forward(signum: int, frame: FrameType | None) -> None:
        runner.kill(name, KillReason.INTERRUPTED, f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    runner.start(name, spec, events.put)
    while True:
        event = events.get()
        if isinstance(event, TrialStarted):
            continue
        _push(args, event.observations)
        if isinstance(event, TrialEnded):
            if event.ending == Ending.NOT_STARTED:
                print(f"trial_runner: {event.message}", file=sys.stderr)
                return 127
            code = event.exit_code or 0
            return 128 - code if code < 0 else code
        assert isinstance(event, MetricsReported)


def _sidecar(args: argparse.Namespace) -> int:
    from trial_runner._sidecar import HttpPusher, run_sidecar

    if not args.done_file:
        print("trial_runner: --sidecar needs --done-file", file=sys.stderr)
        return EXIT_USAGE
    primary = all(
        os.environ.get(key) == value
        for key, _, value in (item.partition("=") for item in args.only_if)
    )
    names = [n for n in args.metric_names.split(",") if n]
    collector = None
    if primary:
        try:
            if args.collector == "StdOut":
                # The training output, as the wrapped command tees it into the shared file.
                if not args.path:
                    raise ValueError("--sidecar --collector StdOut needs --path")
                from trial_runner.metrics import FileCollector

                collector = FileCollector(
                    args.path, names, metrics_format=args.metrics_format,
                    text_metrics=_texts(args),
                )
            else:
                collector = _collector(args, names)
        except (ValueError, ImportError) as e:
            print(f"trial_runner: {e}", file=sys.stderr)
            return EXIT_USAGE
    push = None
    if not args.no_push and args.api_url and args.trial_name:
        push = HttpPusher(args.api_url, args.namespace, args.trial_name, args.token)
    elif primary and not args.no_push:
        print("trial_runner: no KATIB_API_URL or KATIB_TRIAL_NAME: metrics are not pushed",
              file=sys.stderr)
    return run_sidecar(collector, done_file=args.done_file, push=push)


def _collector(args: argparse.Namespace, names: list[str]) -> Any:
    from trial_runner.metrics import FileCollector, PrometheusCollector, TFEventCollector

    if args.collector == "PrometheusMetric":
        if not args.url:
            raise ValueError("--collector PrometheusMetric needs --url")
        return PrometheusCollector(args.url, names)
    if not args.path:
        raise ValueError(f"--collector {args.collector} needs --path")
    if args.collector == "TensorFlowEvent":
        return TFEventCollector(args.path, names)
    formats = args.metrics_format if args.format == "TEXT" else None
    return FileCollector(
        args.path, names, format=args.format, metrics_format=formats, text_metrics=_texts(args)
    )


def _texts(args: argparse.Namespace) -> list[str]:
    return [n for n in args.text_metrics.split(",") if n]


def _push(args: argparse.Namespace, observations: Sequence[Any]) -> None:
    if args.no_push or not observations:
        return
    from katib import ReportError, push_observations

    points = [o.to_wire() for o in observations]
    try:
        push_observations(points, url=args.api_url, namespace=args.namespace,
                          trial=args.trial_name, token=args.token)
    except ReportError as e:
        # Training goes on: losing a batch of metrics must not kill the trial.
        print(f"trial_runner: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
