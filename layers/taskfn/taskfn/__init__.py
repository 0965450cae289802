"""taskfn: a serverless function platform. This package is the shared Lambda layer."""
