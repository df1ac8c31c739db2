"""``xatl generate`` and ``xatl chat`` on a saved student: streamed text, summary line, clear one-line errors."""

from __future__ import annotations

import io
import sys

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

import subproc
from xatl.cli.main import main


@pytest.fixture(scope="module")
def reference(student_dir):
    model = AutoModelForCausalLM.from_pretrained(student_dir).eval()
    tok = AutoTokenizer.from_pretrained(student_dir)

    def continuation(prompt: str, n: int) -> str:
        ids = tok(prompt, return_tensors="pt").input_ids
        return tok.decode(model.generate(ids, max_new_tokens=n, do_sample=False)[0, ids.shape[1]:])

    return continuation


def test_generate_streams_the_continuation(student_dir, reference, capsys):
    rc = main(["generate", "--model", str(student_dir), "--prompt", "Once upon", "--max-new-tokens", "9",
               "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out == "Once upon" + reference("Once upon", 9) + "\n"
    assert "9 prompt + 9 new tokens" in err and "tokens/s" in err and "MiB" in err


def test_generate_sampling_beams_and_stdin(student_dir, capsys, monkeypatch):
    args = ["generate", "--model", str(student_dir), "--max-new-tokens", "6", "--device", "cpu", "--quiet"]
    assert main(args + ["--prompt", "abc", "--temperature", "0.8", "--top-k", "10", "--top-p", "0.9",
                        "--seed", "1"]) == 0
    first = capsys.readouterr().out
    assert main(args + ["--prompt", "abc", "--temperature", "0.8", "--top-k", "10", "--top-p", "0.9",
                        "--seed", "1"]) == 0
    assert capsys.readouterr().out == first and first.startswith("abc")
    assert main(args + ["--prompt", "abc", "--num-beams", "3"]) == 0
    assert capsys.readouterr().out.startswith("abc")
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin"))
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("from stdin") and err == ""


@pytest.mark.parametrize("extra,message", [
    (["--prompt", ""], "the prompt is empty"),
    (["--prompt", "x", "--top-k", "5"], "set temperature > 0"),
    (["--prompt", "x" * 200], "at most 128 positions"),
    (["--prompt", "x", "--max-new-tokens", "0"], "max_new_tokens must be >= 1"),
])
def test_generate_bad_input_is_one_line(student_dir, capsys, extra, message):
    rc = main(["generate", "--model", str(student_dir), "--device", "cpu"] + extra)
    out, err = capsys.readouterr()
    assert rc == 2 and out == "", "a refused request prints nothing on stdout"
    lines = err.strip().splitlines()
    assert lines[-1].startswith("xatl generate: error: ") and message in lines[-1]


def test_generate_missing_model_is_one_line(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "nope"), "--prompt", "x"]) == 2
    assert "xatl generate: error: model path" in capsys.readouterr().err


def test_chat_reads_turns_from_stdin(student_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n\n/reset\nHi again\n/quit\nnever read\n"))
    rc = main(["chat", "--model", str(student_dir), "--max-new-tokens", "5", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert len(out.splitlines()) >= 2 and "never read" not in out
    assert "plain User:/Assistant: format" in err and "[conversation reset]" in err


def test_the_launcher_loads_a_student_lazily(student_dir):
    """The console script imports xatl lazily (no eager Auto registration); generate must still load a student."""
    import os

    code = "import sys, xatl_cli\nsys.argv = ['xatl', *sys.argv[1:]]\nsys.exit(xatl_cli.main())"
    env = {k: v for k, v in os.environ.items() if k != "XATL_LAZY_IMPORT"}
    proc = subproc.run([sys.executable, "-c", code, "generate", "--model", str(student_dir), "--prompt", "ab",
                        "--max-new-tokens", "3", "--device", "cpu", "--quiet"], env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ab")
