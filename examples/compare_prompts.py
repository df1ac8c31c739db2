"""Greedy continuations of the same prompts by a donor and by each healed student, side by side (Markdown).

    python examples/compare_prompts.py --donor smollm2-135m --models runs/heal-lolcats/train/final \
        runs/heal-hybrid/train/final --out docs/heal/prompts.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

PROMPTS = ["The capital of France is", "Water boils at a temperature of", "The first President of the United States",
           "In Python, a list comprehension", "Photosynthesis is the process by which"]


def continuations(path: str, prompts: list[str], tokens: int) -> list[str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import xatl  # noqa: F401  (registers the XATL classes)
    from xatl.donors.load import resolve_source

    src = resolve_source(path)
    tok = AutoTokenizer.from_pretrained(src.path, **src.kwargs)
    model = AutoModelForCausalLM.from_pretrained(src.path, dtype=torch.float32, **src.kwargs).eval()
    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tok(prompt, return_tensors="pt")
            gen = model.generate(**ids, max_new_tokens=tokens, do_sample=False, pad_token_id=tok.eos_token_id)
            out.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--donor", required=True)
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--labels", nargs="+", default=None)
    p.add_argument("--tokens", type=int, default=24)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    labels = args.labels or args.models
    columns = {"donor": continuations(args.donor, PROMPTS, args.tokens)}
    for label, path in zip(labels, args.models):
        columns[label] = continuations(path, PROMPTS, args.tokens)
    lines = []
    for i, prompt in enumerate(PROMPTS):
        lines.append(f"**{prompt}**\n")
        for label, texts in columns.items():
            lines.append(f"- *{label}*: {texts[i].replace(chr(10), ' ')}")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
