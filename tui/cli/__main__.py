"""`python -m tui.cli`: the same as the `replitrack` command."""

import sys

from tui.cli.main import main

sys.exit(main())
