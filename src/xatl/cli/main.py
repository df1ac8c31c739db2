"""``xatl``: the command-line entry point.

Subcommands are listed in ``COMMANDS`` and imported lazily, so ``xatl --help`` is fast (no torch: the ``xatl``
launcher, ``xatl_cli``, imports the package lazily) and a subcommand's heavy imports (torch, transformers,
lm-eval) load only when it runs. A subcommand module defines:

* ``HELP``: one line for ``xatl --help``;
* ``add_arguments(parser)``: its options;
* ``run(args) -> int``: the work; raises ``xatl.errors.XATLError`` for bad input.

Bad input ends with one line ``xatl <command>: error: <problem and fix>`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> module under xatl.cli (one line per subcommand; order is the order in --help)
COMMANDS: dict[str, str] = {
    "convert": "convert",
    "heal": "heal",
    "fetch": "fetch",
    "train": "train",
    "eval": "evaluate",
    "generate": "generate",
    "chat": "chat",
    "profile": "profile",
    "quantize": "quantize",
    "run": "run",
}

EPILOG = """examples:
  xatl fetch smollm2-135m
  xatl heal --donor smollm2-135m --out runs/heal --budget 15m    # a healed linear-cost student
  xatl convert --donor smollm2-135m --mixer retention --out students/smol-ret
  xatl convert --donor ./my-llama --mixer retention --attention-layers 1,11 --copy default,qkv --out students/hyb
  xatl run                      # the embedded default experiment (same as `make demo`)
"""


def _load(name: str):
    try:
        return importlib.import_module(f"xatl.cli.{COMMANDS[name]}")
    except ModuleNotFoundError as e:
        if e.name == f"xatl.cli.{COMMANDS[name]}":
            return None          # not built yet: the command is hidden
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from xatl import __version__

    parser = argparse.ArgumentParser(
        prog="xatl", description="Cross-Architecture Transfer Learning: turn a pretrained Transformer into a "
        "linear-cost-inference model, train it, evaluate it and generate with it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"xatl {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", default=None, metavar="N",
                        help="CPU threads for torch (default: $XATL_THREADS, else one per core); on a machine "
                        "shared with another busy process, 1 is much faster (docs/benchmarks.md)")
    common.add_argument("--trust-remote-code", action="store_true",
                        help="run Python code that a model directory names in its auto_map (off by default: such a "
                        "directory is refused); only for models whose author you trust and whose code you have read")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            # keep every name listed in --help without importing every module
            continue
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=getattr(module, "EPILOG", None), parents=[common])
        if only is not None:     # a subcommand's options (and their imports) only when it is the one named
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    from xatl.errors import ConfigError, XATLError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 0 if not argv else 2
    try:
        from xatl.utils.threads import configure_threads

        try:
            configure_threads(args.threads)
        except ValueError as e:
            raise ConfigError(f"--threads: {e}") from None
        from xatl.utils.remote_code import allow_remote_code

        allow_remote_code(args.trust_remote_code)
        return int(args._module.run(args) or 0)
    except XATLError as e:
        print(f"xatl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xatl {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:                      # disk full, permissions, a vanished path: one line, not a traceback
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"xatl {args.command}: error: {e.strerror or e}{where}; check the path, its permissions and free "
              "disk space", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"xatl {args.command}: error: out of memory; use a smaller batch/model or a bigger machine",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    if os.environ.get("XATL_DEBUG"):
        print("xatl: debug mode", file=sys.stderr)
    sys.exit(main())
