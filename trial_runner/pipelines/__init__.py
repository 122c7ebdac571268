"""Trials as pipeline runs.

:class:`KfpLauncher` runs each trial as a Kubeflow Pipelines run through KFP's REST API
(a ``pipelines.kubeflow.org/v2beta1`` ``Run`` trial template); :class:`KindDispatcher`
puts it beside the launcher of every other kind, so that ``katib run``, the server and the
operator send each trial to the right one (:func:`with_pipeline_runs`). Argo Workflows and
Tekton PipelineRuns are cluster workloads: the Kubernetes launcher creates them, and
:func:`primary_step` finds the step of their template that Katib's metrics collector joins.
"""

from __future__ import annotations

from trial_runner._launch import Launcher
from trial_runner.pipelines._dispatch import KindDispatcher, Route
from trial_runner.pipelines._kfp import (
    KFP_API_VERSION,
    KFP_KIND,
    PUSH_PARAMETERS,
    KfpLauncher,
    KfpRunTemplate,
    KfpTemplateError,
    is_kfp_run,
)
from trial_runner.pipelines._kfp_api import KfpApi, KfpApiError
from trial_runner.pipelines._steps import PrimaryStep, primary_step

__all__ = [
    "KFP_API_VERSION",
    "KFP_KIND",
    "PUSH_PARAMETERS",
    "KfpApi",
    "KfpApiError",
    "KfpLauncher",
    "KfpRunTemplate",
    "KfpTemplateError",
    "KindDispatcher",
    "PrimaryStep",
    "Route",
    "is_kfp_run",
    "primary_step",
    "with_pipeline_runs",
]


def with_pipeline_runs(launcher: Launcher, kfp: KfpLauncher | None = None) -> KindDispatcher:
    """``launcher`` for every trial, except KFP ``Run`` templates, which ``kfp`` (default: a
    :class:`KfpLauncher` on ``KFP_HOST``) runs."""
    return KindDispatcher(launcher, [(is_kfp_run, kfp or KfpLauncher())])
