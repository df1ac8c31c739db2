"""A saved student loads in a fresh process through the Auto classes, with xatl installed and without it."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap

import pytest
import torch

import subproc
import xatl
from tiny import VOCAB, tiny_donor

PROBE = textwrap.dedent("""
    import sys, json, torch
    torch.set_num_threads({threads})  # the parent's thread count: same reduction order, so bit-exact logits
    {block}
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(sys.argv[1], **json.loads(sys.argv[2])).eval()
    ids = torch.arange({n}).remainder({vocab}).view(1, -1)
    with torch.no_grad():
        torch.save(m(ids).logits, sys.argv[3])
    print(type(m).__module__)
""")


def _probe(path, out, kwargs, block_xatl=False):
    block = ("import builtins\n_imp = builtins.__import__\n"
             "def _no_xatl(name, *a, **k):\n"
             "    if name == 'xatl' or name.startswith('xatl.'):\n"
             "        raise ImportError('xatl is blocked in this test')\n"
             "    return _imp(name, *a, **k)\n"
             "builtins.__import__ = _no_xatl") if block_xatl else "import xatl"
    code = PROBE.format(block=block, n=21, vocab=VOCAB, threads=torch.get_num_threads())
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(out.parent / "hf_modules"))
    proc = subproc.run([sys.executable, "-c", code, str(path), json.dumps(kwargs), str(out)], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out), proc.stdout.strip()


@pytest.fixture(scope="module")
def saved_student(tmp_path_factory):
    donor = tiny_donor("llama")
    cfg = xatl.student_config(donor.config, mixer="retention", attention_layers=[1])
    student, report = xatl.transfer(donor, cfg)
    path = tmp_path_factory.mktemp("student") / "s"
    xatl.save_student(student, path, report)
    ids = torch.arange(21).remainder(VOCAB).view(1, -1)
    with torch.no_grad():
        ref = student(ids).logits
    return path, ref


def test_fresh_process_auto_from_pretrained(saved_student, tmp_path):
    path, ref = saved_student
    logits, module = _probe(path, tmp_path / "l.pt", {})
    assert module.startswith("xatl.")
    assert torch.equal(logits, ref)


def test_trust_remote_code_without_xatl(saved_student, tmp_path):
    path, ref = saved_student
    copy = tmp_path / "copied"
    shutil.copytree(path, copy)
    logits, module = _probe(copy, tmp_path / "l.pt", {"trust_remote_code": True}, block_xatl=True)
    assert module.startswith("transformers_modules")
    assert torch.allclose(logits, ref, atol=1e-6, rtol=0)


def test_saved_directory_contents(saved_student):
    path, _ = saved_student
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "model.safetensors", "transfer_report.json", "modeling_xatl.py"} <= names
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["model_type"] == "xatl" and cfg["attention_layers"] == [1] and cfg["mixer"] == "retention"
    assert not any(n.startswith(".") for n in os.listdir(path.parent)), "temporary directory left behind"


def test_trust_remote_code_without_xatl_for_a_gemma3_student(tmp_path):
    """The model code written next to a student carries the skeleton features of the newer donor families too
    (sandwich norms with 1 + w, scaled embeddings, q/k norms, a local RoPE, logit softcapping)."""
    donor = tiny_donor("gemma3")
    student, report = xatl.transfer(donor, xatl.student_config(donor.config, mixer="lolcats", attention_layers=[1],
                                                                mixer_options={"window": 4}), copy="all")
    path = tmp_path / "s"
    xatl.save_student(student, path, report)
    ids = torch.arange(21).remainder(VOCAB).view(1, -1)
    with torch.no_grad():
        ref = student(ids).logits
    logits, module = _probe(path, tmp_path / "l.pt", {"trust_remote_code": True}, block_xatl=True)
    assert module.startswith("transformers_modules")
    assert torch.allclose(logits, ref, atol=1e-6, rtol=0)
