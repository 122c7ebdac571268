"""Katib-style hyperparameter tuning: run Katib v1beta1 experiments locally or on a cluster.

``report_metrics`` is importable at no cost from inside a trial; nothing heavy is imported
until it is used.
"""

from katib._push import ReportError, report_metrics

__all__ = ["ReportError", "report_metrics"]
