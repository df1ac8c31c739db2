"""``xatl``: the command-line entry point.

Subcommands are listed in ``COMMANDS`` and imported lazily, so ``xatl --help`` is fast (no torch: the ``xatl``
launcher, ``xatl_cli``, imports the package lazily) and a subcommand's heavy imports (torch, transformers,
lm-eval) load only when it runs. A subcommand module defines:

* ``HELP``: one line for ``xatl --help``;
* ``add_arguments(parser)``: its options;
* ``run(args) -> int``: the work; raises ``xatl.errors.XATLError`` for bad input.

Bad input ends with one line ``xatl <command>: error: <problem and fix>`` on stderr and exit status 2. The global
options (``GLOBAL_OPTIONS``: ``--threads N``, ``--trust-remote-code``) go before or after the command.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
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


# the options every command takes, before or after its name: flags -> add_argument keywords
GLOBAL_OPTIONS: dict[tuple[str, ...], dict] = {
    ("--threads",): dict(metavar="N", help="CPU threads for torch, at most one per logical CPU (default: "
                         "$XATL_THREADS, else one per core); on a machine shared with another busy process, 1 is "
                         "much faster (docs/benchmarks.md)"),
    ("--trust-remote-code",): dict(action="store_true", help="run Python code that a model directory names in its "
                                   "auto_map (off by default: such a directory is refused); only for models whose "
                                   "author you trust and whose code you have read"),
}
GLOBAL_DEFAULTS = {"threads": None, "trust_remote_code": False}


def _add_global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The global options on ``parser``; without ``defaults`` (a subcommand's) an option left out sets nothing, so it
    does not overwrite the value given before the command."""
    for flags, kwargs in GLOBAL_OPTIONS.items():
        parser.add_argument(*flags, **kwargs, **({} if defaults else {"default": argparse.SUPPRESS}))
    if defaults:
        parser.set_defaults(**GLOBAL_DEFAULTS)


def find_command(argv: list[str]) -> str | None:
    """The command named in ``argv``: its first argument that is neither an option nor the value of a global option
    given before the command (``xatl --threads 1 generate ...``)."""
    takes_value = {flag for flags, kw in GLOBAL_OPTIONS.items() if kw.get("action") is None for flag in flags}
    args = iter(argv)
    for a in args:
        if a == "--":
            return next(args, None)
        if a in takes_value:
            next(args, None)
        elif not a.startswith("-"):
            return a
    return None


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
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)      # `xatl --thr 2 run`: an abbreviation would hide where the command name is
    parser.add_argument("--version", action="version", version=f"xatl {__version__}")
    _add_global_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_options(common, defaults=False)
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
            p.set_defaults(_module=module, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from xatl.errors import ConfigError, XATLError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = find_command(argv)
    parser = build_parser(only=command if command in COMMANDS else None)
    args, unknown = parser.parse_known_args(argv)
    if unknown:              # argparse's own wording, from the subcommand's parser: `xatl heal: error: ...`
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 0 if not argv else 2
    try:
        from xatl.utils.threads import ENV, configure_threads

        try:
            configure_threads(args.threads)
        except ValueError as e:
            raise ConfigError(f"{'--threads' if args.threads is not None else '$' + ENV}: {e}") from None
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
    except _safetensors_error() as e:       # safetensors' own error, not an OSError even for a full disk
        print(f"xatl {args.command}: error: {_safetensors_message(e, args)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"xatl {args.command}: error: out of memory; use a smaller batch/model or a bigger machine",
              file=sys.stderr)
        return 1


class _NeverRaised(Exception):
    """Stands in for an exception type that the installed libraries do not define."""


def _safetensors_error() -> type[Exception]:
    """``safetensors.SafetensorError`` (``_NeverRaised`` where safetensors lacks it). Looked up only when an error is
    being handled, so the command line starts without importing safetensors."""
    try:
        from safetensors import SafetensorError
    except ImportError:
        return _NeverRaised
    return SafetensorError


def _safetensors_message(e: Exception, args: argparse.Namespace) -> str:
    """One line for a SafetensorError: a failed write (``Error while serializing: IoError(Os { code: 28, ...,
    message: "No space left on device" })``) names the OS's reason and the fix; anything else is a damaged file."""
    text = str(e)
    os_reason = re.search(r'message: "([^"]*)"', text)
    if "Error while serializing" in text or os_reason:
        elsewhere = " or choose another --out" if getattr(args, "out", None) else ""
        return (f"writing weights failed: {os_reason.group(1) if os_reason else text}; free disk space{elsewhere} "
                "and check the path's permissions")
    return f"reading weights failed: {text}; the .safetensors file is damaged or not safetensors, re-create it"


if __name__ == "__main__":
    if os.environ.get("XATL_DEBUG"):
        print("xatl: debug mode", file=sys.stderr)
    sys.exit(main())
