"""Launcher of the ``xatl`` command: marks the import as lazy before the package loads, so ``xatl --help`` and
argument errors answer without importing torch (see ``xatl/__init__.py``), then hands over to ``xatl.cli.main``."""

import os
import sys


def main() -> int:
    os.environ.setdefault("XATL_LAZY_IMPORT", "1")
    from xatl.cli.main import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
