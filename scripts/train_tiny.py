"""Train (or find in the cache) the tiny gpt-oss model; print its checkpoint folder.

    python scripts/train_tiny.py [--out DIR] [--force]
"""

from codexpc.train.cli import main

raise SystemExit(main())
