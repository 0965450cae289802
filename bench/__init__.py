"""taskfn's benchmark suite: `make bench` (python -m bench.run). Measures, never asserts."""
