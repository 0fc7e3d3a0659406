"""`python -m codexpc.train`: see codexpc/train/cli.py."""

from codexpc.train.cli import main

raise SystemExit(main())
