"""`python -m zenwatcher`: the `zen-watcher` command."""

import sys

from zenwatcher.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
