"""``python -m nudask.evaluate RUN``: evaluate a training run (see :mod:`nudask.train.evaluate`)."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from nudask.train.evaluate import main

    sys.exit(main())
