"""A saved student generates through ``trust_remote_code`` where xatl is not installed: the cache and the
generation hooks are part of the self-contained model code written next to the weights."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap

import torch
from transformers import AutoModelForCausalLM

import subproc

PROBE = textwrap.dedent("""
    import builtins, json, sys, torch
    _imp = builtins.__import__
    def _no_xatl(name, *a, **k):
        if name == 'xatl' or name.startswith('xatl.'):
            raise ImportError('xatl is blocked in this test')
        return _imp(name, *a, **k)
    builtins.__import__ = _no_xatl
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    ids, mask = torch.tensor(json.loads(sys.argv[2])), torch.tensor(json.loads(sys.argv[3]))
    out = m.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0,
                     return_dict_in_generate=True)
    try:
        m.generate(ids[:, :0], max_new_tokens=2)
        refused = None
    except ValueError as e:
        refused = type(e).__name__
    print(json.dumps({"tokens": out.sequences.tolist(), "cache": type(out.cache).__name__, "refused": refused,
                      "module": type(m).__module__}))
""")


def test_generate_with_trust_remote_code_without_xatl(student_dir, tmp_path):
    copy = tmp_path / "copied"
    shutil.copytree(student_dir, copy)
    ids = [[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]]
    mask = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "hf_modules"), OMP_NUM_THREADS="1")
    proc = subproc.run([sys.executable, "-c", PROBE, str(copy), json.dumps(ids), json.dumps(mask)], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["module"].startswith("transformers_modules") and got["cache"] == "XATLCache"
    assert got["refused"] == "GenerationError"
    model = AutoModelForCausalLM.from_pretrained(student_dir).eval()
    want = model.generate(torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=8, do_sample=False,
                          pad_token_id=0)
    assert got["tokens"] == want.tolist()
