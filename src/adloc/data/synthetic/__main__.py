"""``python -m adloc.data.synthetic``: see :mod:`adloc.data.synthetic.cli`."""

import contextlib
import sys

from .cli import main

with contextlib.suppress(KeyboardInterrupt):
    sys.exit(main())
