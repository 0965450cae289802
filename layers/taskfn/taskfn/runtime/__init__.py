"""Runtimes: run user code safely (child processes) and check uploaded code."""
