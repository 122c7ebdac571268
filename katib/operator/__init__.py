"""Katib Experiment custom resources run by the controller loop (``katib operator``)."""
