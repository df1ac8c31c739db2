"""Where a passkey is at the end of its prompt: for each passkey prompt of a results' documents file, whether the
student answers it, and per layer how many heads still hold one of the key's tokens in LoLA's exact cache
(``cache_pos``: each cached pair's position). The check behind "where the keys go" in docs/results.md.

    xatl eval --model runs/heal/train/final --tasks passkey --max-length 8192 --out long.json   # writes the prompts
    python examples/passkey_cache_probe.py runs/heal/train/final long.passkey.documents.json \\
        --min-length 4096 --mixer-option sparse_cache=192
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from xatl.cli.convert import parse_option
from xatl.eval.loading import load_model


def key_positions(ids: list[int], key_ids: list[int]) -> list[int]:
    """Positions of the first occurrence of the key's tokens in the prompt (the needle's first mention)."""
    n = len(key_ids)
    start = next((i for i in range(len(ids) - n + 1) if ids[i:i + n] == key_ids), None)
    if start is None:
        raise SystemExit("the key's tokens are not in the prompt: is this a passkey documents file of this tokenizer?")
    return list(range(start, start + n))


def heads_holding(state: dict, positions: list[int], seen: int) -> int | None:
    """Heads (of one layer's state) whose cache holds one of ``positions``; None for a layer without the cache."""
    if "cache_pos" not in state:
        return None
    pos = state["cache_pos"][0] + seen                                    # (H, N): absolute positions
    held = state["cache_valid"][0]
    hit = torch.zeros(pos.shape[0], dtype=torch.bool)
    for p in positions:
        hit |= ((pos == p) & held).any(-1)
    return int(hit.sum())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("documents", help="the passkey documents file that `xatl eval --tasks passkey --out` wrote")
    p.add_argument("--min-length", type=int, default=0, help="only prompts of at least this length")
    p.add_argument("--mixer-option", action="append", default=[], metavar="KEY=VALUE", type=parse_option)
    args = p.parse_args()
    model, tokenizer = load_model(args.model, mixer_options=dict(args.mixer_option) or None)
    for doc in json.loads(Path(args.documents).read_text())["prompts"]:
        if doc["length"] < args.min_length:
            continue
        ids = doc["ids"]
        where = key_positions(ids, tokenizer(doc["answer"], add_special_tokens=False).input_ids)
        with torch.no_grad():
            out = model(torch.tensor([ids]), use_cache=True)
        first = tokenizer.decode(out.logits[0, -1].argmax().item())
        layers = [heads_holding(s, where, len(ids)) for s in out.cache.states]
        print(f"{doc['length']:>6} depth {doc['depth']} key {doc['answer']} next token {first!r}: heads holding the "
              f"key per layer: " + " ".join("-" if n is None else str(n) for n in layers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
