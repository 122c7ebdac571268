"""Makes the ``kube_cluster`` fixtures available to the tests in this folder.

The suite-wide registration is ``pytest_plugins = ["tests.cluster.fixture"]`` in
``tests/conftest.py``; this hook adds the plugin only when that line is absent, so the
session-scoped cluster is never defined twice.
"""

from __future__ import annotations

import pytest

PLUGIN = "tests.cluster.fixture"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)
