"""`python -m taskfn.cli`, as the tests and benchmarks start the stack."""

import sys

from taskfn.cli import main

sys.exit(main())
