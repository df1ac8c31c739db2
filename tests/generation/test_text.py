"""Text-level generation: transformers' text-generation pipeline on a saved student, stop strings, streaming
(TextStreamer and StreamPrinter), decoding settings, and multi-turn chat that keeps the cache."""

from __future__ import annotations

import io

import pytest
import torch
from generation_helpers import char_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer, TextStreamer, pipeline

import xatl
from xatl.errors import GenerationError
from xatl.generation import ChatSession, DecodingSettings, StreamPrinter, cut_at_stop, generate_text, render_plain

PROMPT = "The cat sat on"


@pytest.fixture(scope="module")
def loaded(student_dir):
    return AutoModelForCausalLM.from_pretrained(student_dir).eval(), AutoTokenizer.from_pretrained(student_dir)


def continuation(model, tok, prompt: str, n: int) -> str:
    ids = tok(prompt, return_tensors="pt").input_ids
    return tok.decode(model.generate(ids, max_new_tokens=n, do_sample=False)[0, ids.shape[1]:])


def test_text_generation_pipeline_on_a_saved_student(student_dir, loaded):
    model, tok = loaded
    assert isinstance(model, xatl.XATLForCausalLM) and model.config.attention_layers == [1]
    pipe = pipeline("text-generation", model=str(student_dir))
    out = pipe(PROMPT, max_new_tokens=12, do_sample=False)
    assert out[0]["generated_text"] == PROMPT + continuation(model, tok, PROMPT, 12)
    batch = pipe([PROMPT, "Hi"], max_new_tokens=4, do_sample=False, batch_size=2)   # left-padded batch
    assert batch[1][0]["generated_text"] == "Hi" + continuation(model, tok, "Hi", 4)


def test_stop_strings_end_generation(loaded):
    model, tok = loaded
    text = continuation(model, tok, PROMPT, 30)
    stop = text[6:8]
    first = text.find(stop)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=30, do_sample=False, stop_strings=[stop], tokenizer=tok)
    assert tok.decode(out[0, ids.shape[1]:]) == text[:first + len(stop)]


def test_text_streamer_prints_what_is_generated(loaded, capsys):
    model, tok = loaded
    ids = tok(PROMPT, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=15, do_sample=False, streamer=TextStreamer(tok, skip_prompt=True))
    assert capsys.readouterr().out == tok.decode(out[0, ids.shape[1]:]) + "\n"


def test_stream_printer_hides_stop_strings():
    tok = char_tokenizer()
    sink = io.StringIO()
    printer = StreamPrinter(tok, out=sink, stop=["\nUser:"], skip_prompt=False)
    for ch in "Hi there\nUsed\nUser: more":
        printer.put(torch.tensor(tok.convert_tokens_to_ids([ch])))
    printer.end()
    assert sink.getvalue() == printer.text == "Hi there\nUsed"
    assert cut_at_stop("a.b.c", [".c", "."]) == ("a", True) and cut_at_stop("abc", ["x"]) == ("abc", False)


def test_generate_text_streams_and_measures(loaded):
    model, tok = loaded
    sink = io.StringIO()
    res = generate_text(model, tok, PROMPT, DecodingSettings(max_new_tokens=10), out=sink)
    assert sink.getvalue() == res.text == continuation(model, tok, PROMPT, 10)
    assert res.new_tokens == 10 and res.prompt_tokens == len(PROMPT) and res.cache_bytes > 0
    beams = generate_text(model, tok, PROMPT, DecodingSettings(max_new_tokens=5, num_beams=3), out=io.StringIO())
    assert beams.new_tokens == 5
    a = generate_text(model, tok, PROMPT, DecodingSettings(max_new_tokens=10, temperature=0.9, top_p=0.9, seed=3))
    b = generate_text(model, tok, PROMPT, DecodingSettings(max_new_tokens=10, temperature=0.9, top_p=0.9, seed=3))
    assert a.text == b.text


@pytest.mark.parametrize("settings,message", [
    (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
    (dict(top_k=5), "set temperature > 0"),
    (dict(temperature=-1.0), "temperature must be >= 0"),
    (dict(temperature=1.0, top_p=1.5), "top_p must be in"),
    (dict(stop=[""]), "stop string is empty"),
])
def test_bad_decoding_settings(settings, message):
    with pytest.raises(GenerationError, match=message):
        DecodingSettings(**settings).validate()


def test_chat_plain_format_keeps_the_cache_between_turns(loaded):
    model, tok = loaded
    chat = ChatSession(model, tok, DecodingSettings(max_new_tokens=8), system="Be brief.")
    assert not chat.uses_template
    lengths = []
    hook = model.model.embed_tokens.register_forward_pre_hook(lambda m, a: lengths.append(a[0].shape[1]))
    try:
        first = chat.reply("Hello")
        seen = chat.cache.get_seq_length()
        lengths.clear()
        second = chat.reply("And?")
    finally:
        hook.remove()
    assert chat.recomputed_turns == 0
    history = render_plain(chat.messages[:-1])
    assert history == f"Be brief.\n\nUser: Hello\nAssistant:{first}\nUser: And?\nAssistant:"
    # only the unseen text ran: the last token of turn 1 (or none), then "\nUser: And?\nAssistant:"
    assert lengths[0] in (len(history) - seen, len(history) - seen - 1) and lengths[0] < 30
    ids = tok(history, return_tensors="pt").input_ids
    fresh = tok.decode(model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:])
    assert second == cut_at_stop(fresh, ["\nUser:"])[0]
    chat.reset()
    assert chat.messages == [{"role": "system", "content": "Be brief."}] and chat.cache.get_seq_length() == 0


def test_chat_uses_the_tokenizer_chat_template(loaded):
    model, _ = loaded
    template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}"
                "{% if add_generation_prompt %}<assistant>{% endif %}")
    tok = char_tokenizer(chat_template=template)
    chat = ChatSession(model, tok, DecodingSettings(max_new_tokens=6))
    assert chat.uses_template
    sink = io.StringIO()
    answer = chat.reply("Hi", out=sink)
    assert sink.getvalue() == answer and len(answer) > 0
    chat.reply("Again")
    assert chat.recomputed_turns == 0 and len(chat.messages) == 4
