"""Metrics collectors: parse what a trial reports into observations."""

from trial_runner.metrics._collector import Collector, InvalidCollectorError, MissingDependencyError
from trial_runner.metrics._custom import CustomCollector
from trial_runner.metrics._file import FileCollector
from trial_runner.metrics._prometheus import PrometheusCollector
from trial_runner.metrics._stdout import (
    DEFAULT_METRICS_FORMAT,
    MAX_LINE_CHARS,
    InvalidMetricsFormatError,
    MetricsParser,
    Observation,
    RejectCallback,
    parse_json_line,
    top_level_groups,
    validate_metrics_format,
)
from trial_runner.metrics._tfevent import TFEventCollector

__all__ = [
    "DEFAULT_METRICS_FORMAT",
    "MAX_LINE_CHARS",
    "Collector",
    "CustomCollector",
    "FileCollector",
    "InvalidCollectorError",
    "InvalidMetricsFormatError",
    "MetricsParser",
    "MissingDependencyError",
    "Observation",
    "PrometheusCollector",
    "RejectCallback",
    "TFEventCollector",
    "parse_json_line",
    "top_level_groups",
    "validate_metrics_format",
]
