"""A loopback KFP API server per test (tests/trial_runner/pipelines/kfp_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.trial_runner.kubernetes.conftest import (  # noqa: F401 - fixtures, for Argo/Tekton
    kube_api,
    launcher,
    push_recorder,
)
from tests.trial_runner.pipelines.kfp_server import FakeKfp, Script, serve


@pytest.fixture
def fake_kfp() -> Iterator[FakeKfp]:
    fake = FakeKfp(lambda params: Script())
    httpd, thread = serve(fake)
    yield fake
    httpd.shutdown()
    thread.join(5)
