"""One router per resource; :func:`katib.api.app.create_app` mounts them all."""

from katib.api.routes import (
    algorithms,
    analysis,
    audit,
    experiments,
    health,
    namespaces,
    observations,
    root,
    tokens,
    trials,
)

__all__ = [
    "algorithms",
    "analysis",
    "audit",
    "experiments",
    "health",
    "namespaces",
    "observations",
    "root",
    "tokens",
    "trials",
]
