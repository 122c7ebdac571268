"""Metrics collectors: parse what a trial reports into observations."""

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

__all__ = [
    "DEFAULT_METRICS_FORMAT",
    "MAX_LINE_CHARS",
    "InvalidMetricsFormatError",
    "MetricsParser",
    "Observation",
    "RejectCallback",
    "parse_json_line",
    "top_level_groups",
    "validate_metrics_format",
]
