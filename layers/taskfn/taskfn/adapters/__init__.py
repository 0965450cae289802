"""Adapters: one per documented API; parse requests, shape answers, map errors."""
