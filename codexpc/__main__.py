"""`python -m codexpc`: the same CLI as the `codexpc` script (the service runs it this way)."""

import sys

from codexpc.cli.main import main

sys.exit(main())
