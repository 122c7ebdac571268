"""Trial launchers and metrics collectors."""
