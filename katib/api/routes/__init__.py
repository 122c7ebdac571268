"""One router per resource; :func:`katib.api.app.create_app` mounts them all."""

from katib.api.routes import algorithms, experiments, health, observations, root, tokens, trials

__all__ = ["algorithms", "experiments", "health", "observations", "root", "tokens", "trials"]
