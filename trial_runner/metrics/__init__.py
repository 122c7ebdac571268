"""Metrics collectors: parse what a trial reports into observations."""
