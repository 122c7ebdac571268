"""Katib-style hyperparameter tuning: run Katib v1beta1 experiments locally or on a cluster."""
