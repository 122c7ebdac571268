"""How a local trial's metrics are collected: Katib's ``metricsCollectorSpec`` made local.

On a cluster each trial's pod has its own filesystem and network namespace, so Katib's
examples use one absolute path (``/katib/mnist.log``) or one port for every trial. Locally the
trials share this machine, so each trial gets its own folder
(``$KATIB_HOME/trials/<namespace>/<experiment>/<trial>``) and, for Prometheus, its own port; the
configured path or port is replaced by the trial's own wherever it appears literally in the
container's command, args and env.
"""

from __future__ import annotations

import os
import posixpath
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from katib.errors import KatibError
from katib.spec import CollectorKind, MetricsCollectorSpec
from trial_runner._launch import CollectionPlan


class CollectorSetupError(KatibError):
    """The metrics collector cannot be set up for this trial (bad spec, missing package)."""


@dataclass
class LocalCollection:
    """What the local launcher needs to collect one trial's metrics."""

    parse_stdout: bool
    collectors: list[Any] = field(default_factory=list)
    #: (text in the spec, this trial's own value), applied to command, args and env values.
    replacements: list[tuple[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def apply(self, text: str) -> str:
        """Replace each spec value where it stands as a whole path or token, in one pass.

        One pass, longest first, so that a replacement's result is never replaced again and
        ``/katib/mnist.log`` wins over its folder ``/katib``.
        """
        if not self.replacements:
            return text
        mapping = dict(self.replacements)
        alternatives = "|".join(re.escape(old) for old in sorted(mapping, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.-])(?:{alternatives})(?![\w.-])")
        return pattern.sub(lambda m: mapping[m.group(0)], text)


def collector_kind(spec: MetricsCollectorSpec | None) -> str:
    if spec is None or spec.collector is None or not spec.collector.kind:
        return CollectorKind.STDOUT.value
    return spec.collector.kind


def plan_collection(
    plan: CollectionPlan, *, trial_dir: Path, cwd: str, env: Mapping[str, str]
) -> LocalCollection:
    """The collectors, path mappings and environment for one trial."""
    spec, metric_names = plan.spec, plan.metric_names
    kind = collector_kind(spec)
    formats = list(plan.metrics_format) if plan.metrics_format else None
    if kind == CollectorKind.STDOUT:
        return LocalCollection(parse_stdout=True)
    if kind in (CollectorKind.PUSH, CollectorKind.NONE):
        return LocalCollection(parse_stdout=False)
    try:
        return _plan(
            kind, spec, metric_names, formats, trial_dir=trial_dir, cwd=cwd, env=env,
            text_metrics=plan.text_metrics,
        )
    except (ImportError, ValueError, OSError) as e:
        raise CollectorSetupError(f"metrics collector {kind}: {e}") from e


def _plan(
    kind: str,
    spec: Any,
    metric_names: Sequence[str],
    formats: list[str] | None,
    *,
    trial_dir: Path,
    cwd: str,
    env: Mapping[str, str],
    text_metrics: Sequence[str] = (),
) -> LocalCollection:
    from trial_runner.metrics import (
        CustomCollector,
        FileCollector,
        PrometheusCollector,
        TFEventCollector,
    )

    source = spec.source
    if kind == CollectorKind.FILE:
        fs = source.file_system_path
        path = fs.path
        local = trial_dir / posixpath.basename(path.rstrip("/"))
        local.parent.mkdir(parents=True, exist_ok=True)
        plan = LocalCollection(parse_stdout=False, replacements=[(path, str(local))])
        folder = posixpath.dirname(path)
        if folder not in ("", "/"):
            plan.replacements.append((folder, str(trial_dir)))
        plan.collectors.append(
            FileCollector(local, metric_names, format=fs.format or "TEXT",
                          metrics_format=formats, text_metrics=text_metrics)
        )
        return plan
    if kind == CollectorKind.TENSORFLOW_EVENT:
        folder = source.file_system_path.path.rstrip("/")
        local = trial_dir / (posixpath.basename(folder) or "tfevent")
        local.mkdir(parents=True, exist_ok=True)
        return LocalCollection(
            parse_stdout=False,
            collectors=[TFEventCollector(local, metric_names)],
            replacements=[(folder, str(local))],
        )
    if kind == CollectorKind.PROMETHEUS:
        http_get = source.http_get
        port = str(http_get.port)
        own = str(_free_port())
        path = http_get.path or "/metrics"
        return LocalCollection(
            parse_stdout=False,
            collectors=[PrometheusCollector(f"http://127.0.0.1:{own}{path}", metric_names)],
            replacements=[(port, own)],
            env={"KATIB_METRICS_PORT": own},
        )
    if kind == CollectorKind.CUSTOM:
        container = spec.collector.custom_collector or {}
        argv = [str(a) for a in [*(container.get("command") or []),
                                 *(container.get("args") or [])]]
        collector_env = {**os.environ, **env}
        for item in container.get("env") or []:
            if isinstance(item, Mapping) and "name" in item and "value" in item:
                collector_env[str(item["name"])] = str(item["value"])
        return LocalCollection(
            parse_stdout=False,
            collectors=[CustomCollector(argv, metric_names, env=collector_env, cwd=cwd,
                                        metrics_format=formats)],
        )
    raise ValueError(f"unknown collector kind {kind!r}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
