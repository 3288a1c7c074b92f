"""A tiny Hugging Face Llama folder whose tokenizer carries a Hermes-style chat template (the one Qwen2.5
writes: tools listed in the system message, calls as <tool_call>{json}</tool_call>, results in
<tool_response>), trained inside the test session to call a client's tool on a few fixed conversations, and to
answer from the tool's result on the next turn. A real model through the real loader, engine and server, so the
tool-calling machinery is tested on what a model writes; it learns the replies by heart.

Training is a few hundred full-batch steps of a 2-layer model on CPU, seeded: greedy decoding gives these
replies token for token."""

from __future__ import annotations

import json
from pathlib import Path

import torch

# Qwen2.5's template, shortened (its default system message is ours) but rendering the same shapes
HERMES_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n" }}
    {{- "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments " }}
    {{- "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n" }}
    {{- "{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first)
           or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {%- if tool_call.arguments is string %}
                {{- tool_call.arguments }}
            {%- else %}
                {{- tool_call.arguments | tojson }}
            {%- endif %}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "The local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOLS = [WEATHER, TIME]

WEATHER_Q = "What is the weather in Paris?"
WEATHER_ARGS = {"city": "Paris"}
WEATHER_RESULT = '{"sky": "sunny", "celsius": 21}'
WEATHER_A = "It is sunny in Paris, 21 C."
BOTH_Q = "Weather and time in Oslo?"  # two calls in one reply
BOTH_ARGS = {"city": "Oslo"}
BROKEN_Q = "Weather in Rome, quickly."  # the model learnt to write broken JSON here
BROKEN_ARGS = '{"city": "Rome",}'
HELLO_Q = "Say hello."
HELLO_A = "Hello!"
PLAIN_A = "I can only tell the weather."  # what it says to the weather question without tools
FORCED_ARGS = {"city": "Lima"}  # its get_time call to HELLO_Q: learnt once against three times "Hello!", so
# greedy decoding says hello unless the server forces the call's opening (tool_choice required or named)


def call(name: str, args, i: int = 0) -> dict:
    return {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}


def conversations() -> list[tuple[list[dict], list[dict] | None]]:
    """(messages ending in the reply to learn, tools offered): a call, two calls, broken JSON, a plain answer with
    tools offered (three times) and the call that a forced opening leads to, the answer from a tool's result, and
    the weather question without tools."""
    u = lambda q: {"role": "user", "content": q}  # noqa: E731
    hello = ([u(HELLO_Q), {"role": "assistant", "content": HELLO_A}], TOOLS)
    return [hello, hello,
        ([u(HELLO_Q), {"role": "assistant", "tool_calls": [call("get_time", FORCED_ARGS)]}], TOOLS),
        ([u(WEATHER_Q), {"role": "assistant", "tool_calls": [call("get_weather", WEATHER_ARGS)]}], TOOLS),
        ([u(BOTH_Q), {"role": "assistant", "tool_calls": [call("get_weather", BOTH_ARGS),
                                                          call("get_time", BOTH_ARGS, 1)]}], TOOLS),
        ([u(BROKEN_Q), {"role": "assistant", "tool_calls": [call("get_weather", BROKEN_ARGS)]}], TOOLS),
        hello,
        ([u(WEATHER_Q), {"role": "assistant", "tool_calls": [call("get_weather", WEATHER_ARGS)]},
          {"role": "tool", "tool_call_id": "call_0", "content": WEATHER_RESULT},
          {"role": "assistant", "content": WEATHER_A}], TOOLS),
        ([u(WEATHER_Q), {"role": "assistant", "content": PLAIN_A}], None),
        ([u(HELLO_Q), {"role": "assistant", "content": HELLO_A}], None),
    ]


def render(tok, messages: list[dict], tools) -> tuple[list[int], list[float]]:
    """ids of a conversation and loss weights: 1 on the last reply (and the end-of-turn token after it)."""
    prompt = tok.render_text(messages[:-1], tools)
    whole = tok.render_text(messages, tools)  # the reply rendered in the template's own words
    reply = whole[len(prompt):whole.rindex("<|im_end|>") + len("<|im_end|>")]
    assert whole.startswith(prompt)
    p, r = tok.encode(prompt), tok.encode(reply)
    return p + r, [0.0] * len(p) + [1.0] * len(r)


def byte_bpe(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (as GPT-2's and Qwen's), trained on texts, with ChatML's two markers special."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|im_start|>", "<|im_end|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return hf


def write_tokenizer(d: Path, hf_tok) -> None:
    """tokenizer.json, and tokenizer_config.json with the template."""
    hf_tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": HERMES_TEMPLATE, "eos_token": "<|im_end|>",
        "bos_token": None}))
    (d / "generation_config.json").write_text(json.dumps({"eos_token_id": hf_tok.token_to_id("<|im_end|>")}))


def write_hermes_model(d: Path, steps: int = 200) -> Path:
    """The trained folder (config.json, model.safetensors, the tokenizer files). Its tokenizer is trained on the
    rendered conversations, so that the template's long system message is a few dozen tokens, not hundreds."""
    import transformers

    from colossus.data.template_tokenizer import TemplateTokenizer

    d.mkdir(parents=True)
    write_tokenizer(d, byte_bpe([], 300))  # only to render the texts the real one is trained on
    texts = [TemplateTokenizer.from_hf_folder(d).render_text(m, t) for m, t in conversations()]
    write_tokenizer(d, byte_bpe(texts, 1024))
    tok = TemplateTokenizer.from_hf_folder(d)
    end = tok.end
    rows = [render(tok, m, t) for m, t in conversations()]
    T = max(len(ids) for ids, _ in rows)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=1024, tie_word_embeddings=False, bos_token_id=end,
                                   eos_token_id=end, pad_token_id=end)
    model = transformers.LlamaForCausalLM(cfg)
    ids = torch.full((len(rows), T), tok.end)
    w = torch.zeros(len(rows), T)
    for i, (r, m) in enumerate(rows):
        ids[i, :len(r)], w[i, :len(m)] = torch.tensor(r), torch.tensor(m)
    x, y, mask = ids[:, :-1], ids[:, 1:], w[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(steps):
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
        loss = (loss * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval().save_pretrained(d)
    (d / "generation_config.json").write_text(json.dumps({"eos_token_id": end}))  # save_pretrained wrote its own
    return d
