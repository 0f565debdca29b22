"""``python -m eventface.local``: run the local stack until Ctrl-C (``make up``)."""

from __future__ import annotations

import sys

from eventface.local.stack import main

if __name__ == "__main__":
    sys.exit(main())
