"""The REST API (FastAPI).

``create_app(storage, controller=...)`` builds the application around a
:class:`~katib.controller.BackgroundController` (the one controller loop, in a thread);
``katib server`` serves it with uvicorn. Layout: ``app.py`` (assembly), ``deps.py``
(storage, principal), ``routes/`` (one router per resource), ``schemas.py`` (request and
response models).
"""

from katib.api._bootstrap import ADMIN_TOKEN_ENV, ensure_admin_token
from katib.api.app import create_app

__all__ = ["ADMIN_TOKEN_ENV", "create_app", "ensure_admin_token"]
