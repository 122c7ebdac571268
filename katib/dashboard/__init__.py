"""The dashboard: pages and assets served at ``/`` by the API process.

Everything it shows comes from the REST API with the user's token, so it sees and may do
exactly what that token may. Assets are files of ``static/`` (our own JavaScript modules, no
build step, and third-party code copied from npm by ``vendor.py``), served compressed under
a content-hashed path with long cache headers.
"""

from katib.dashboard._assets import mount_dashboard

__all__ = ["mount_dashboard"]
