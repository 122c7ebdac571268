"""The live ``katib server`` fixtures of tests/katib/client, for the SDK's remote-mode tests."""

from tests.katib.client.conftest import live_server, storage, work_dir  # noqa: F401
