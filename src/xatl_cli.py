"""Launcher of the ``xatl`` command: marks the import as lazy before the package loads, so ``xatl --help`` and
argument errors answer without importing torch (see ``xatl/__init__.py``), then hands over to ``xatl.cli.main``.

The mark is ``LAZY_IMPORT`` of this module, not an environment variable: a value in the user's environment cannot
change what a plain ``import xatl`` registers, and child processes import the package as usual."""

import sys

LAZY_IMPORT = False
"""True once :func:`main` runs: ``xatl/__init__.py`` then skips its eager imports (read at its first import)."""


def main() -> int:
    global LAZY_IMPORT
    LAZY_IMPORT = True
    from xatl.cli.main import main as run

    return run()


if __name__ == "__main__":
    # `python -m xatl_cli` / `python src/xatl_cli.py`: run the module under its own name, where xatl looks for the mark
    from xatl_cli import main as launch

    sys.exit(launch())
