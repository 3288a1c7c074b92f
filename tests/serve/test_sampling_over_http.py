"""Sampling parameters over HTTP change the tokens as documented, not only pass validation: the official
`openai` client against a live server of conftest's `lively` model (every weight random, so the reply
depends on the prompt and on every sampling choice; conftest's default model barely does).

Replies are fixed-length (ignore_eos) and every sampled request has a seed, so each test is deterministic.
A token is named by its bytes (the chat logprobs give them): unlike its display string, they tell ids apart."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

import pytest

openai = pytest.importorskip("openai", reason="the official openai client is not installed (pip install -e '.[dev]')")

HELLO = [{"role": "user", "content": "Where is Sitor Vale?"}]
PROMPT = "Sitor Vale was born in"
FIXED = {"ignore_eos": True}
TOKENS = 40
TOL = 1e-4  # float32 logprobs


@pytest.fixture(scope="module")
def client(live_server, lively) -> Iterator[openai.OpenAI]:
    with live_server(model=lively) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def chat(client: openai.OpenAI, *, extra: dict | None = None, **kw):
    """One chat completion of HELLO, TOKENS long unless kw says otherwise."""
    kw.setdefault("max_tokens", TOKENS)
    return client.chat.completions.create(model="lively", messages=HELLO, extra_body=FIXED | (extra or {}), **kw)


def complete(client: openai.OpenAI, *, extra: dict | None = None, **kw):
    kw.setdefault("max_tokens", TOKENS)
    return client.completions.create(model="lively", prompt=PROMPT, extra_body=FIXED | (extra or {}), **kw)


def chat_tokens(client: openai.OpenAI, **kw) -> list[bytes]:
    """The generated tokens of a chat completion, by their bytes."""
    r = chat(client, logprobs=True, **kw)
    return [bytes(t.bytes) for t in r.choices[0].logprobs.content]


def repeats(tokens: list[bytes]) -> int:
    """How many tokens repeat an earlier one."""
    return len(tokens) - len(set(tokens))


# ---- greedy limits: top_k=1, a tiny top_p and min_p=1 leave only the most likely token ----


@pytest.mark.parametrize("extra,top_p", [({"top_k": 1}, None), ({}, 0.001), ({"min_p": 1.0}, None)],
                         ids=["top_k=1", "top_p=0.001", "min_p=1"])
def test_filters_that_keep_one_token_give_the_greedy_reply(client, extra, top_p):
    """top_p 0.001 is below 1/vocabulary, so the nucleus is the top token alone, whatever the distribution."""
    greedy = chat(client, temperature=0).choices[0].message.content
    sampled = chat(client, temperature=1.5, top_p=top_p, seed=1, extra=extra).choices[0].message.content
    unfiltered = chat(client, temperature=1.5, seed=1).choices[0].message.content
    assert sampled == greedy
    assert unfiltered != greedy  # the same seed without the filter samples something else


def test_top_k_1_on_completions_is_greedy_too(client):
    greedy = complete(client, temperature=0).choices[0].text
    assert complete(client, temperature=1.5, seed=2, extra={"top_k": 1}).choices[0].text == greedy
    assert complete(client, temperature=1.5, seed=2).choices[0].text != greedy


def sampled(client: openai.OpenAI, seed: int, **kw) -> list:
    """The logprobs (20 alternatives a token) of a reply sampled at temperature 1 with seed."""
    return chat(client, temperature=1.0, seed=seed, logprobs=True, top_logprobs=20, **kw).choices[0].logprobs.content


def rank_and_mass(t) -> tuple[int, float]:
    """The chosen token's rank among the 20 most likely (20: below them) and the probability of those above it."""
    tops = [bytes(x.bytes) for x in t.top_logprobs]
    rank = tops.index(bytes(t.bytes)) if bytes(t.bytes) in tops else len(tops)
    return rank, sum(math.exp(x.logprob) for x in t.top_logprobs[:rank])


@pytest.mark.parametrize("seed", [31, 32])
def test_top_k_samples_only_among_the_k_most_likely(client, seed):
    assert all(rank_and_mass(t)[0] < 3 for t in sampled(client, seed, extra={"top_k": 3}))
    assert any(rank_and_mass(t)[0] >= 3 for t in sampled(client, seed))


@pytest.mark.parametrize("seed", [31, 32])
def test_top_p_samples_only_from_the_nucleus(client, seed):
    """A token is in the nucleus when the more likely tokens together have less than top_p."""
    assert all(rank_and_mass(t)[1] < 0.5 + TOL for t in sampled(client, seed, top_p=0.5))
    assert any(rank_and_mass(t)[1] >= 0.5 for t in sampled(client, seed))


@pytest.mark.parametrize("seed", [31, 32])
def test_min_p_drops_the_tokens_far_below_the_most_likely(client, seed):
    def ratio(t) -> float:
        return math.exp(t.logprob - t.top_logprobs[0].logprob)

    assert all(ratio(t) >= 0.2 - TOL for t in sampled(client, seed, extra={"min_p": 0.2}))
    assert any(ratio(t) < 0.2 for t in sampled(client, seed))


# ---- seeds ----


def test_the_same_seed_gives_the_same_reply_and_other_seeds_other_replies(client):
    replies = {s: chat(client, temperature=1.0, seed=s).choices[0].message.content for s in (11, 12, 13, 14)}
    assert chat(client, temperature=1.0, seed=12).choices[0].message.content == replies[12]
    assert len(set(replies.values())) == 4
    texts = {s: complete(client, temperature=1.0, seed=s).choices[0].text for s in (11, 12)}
    assert complete(client, temperature=1.0, seed=11).choices[0].text == texts[11] != texts[12]


def test_n_gives_n_different_choices_each_its_own_seed(client):
    r = chat(client, n=3, temperature=1.0, seed=21)
    texts = [c.message.content for c in r.choices]
    assert [c.index for c in r.choices] == [0, 1, 2] and len(set(texts)) == 3
    assert r.usage.completion_tokens == 3 * TOKENS
    assert texts[1] == chat(client, temperature=1.0, seed=22).choices[0].message.content  # choice i: seed + i
    c = complete(client, n=4, temperature=1.0, seed=21)
    assert len(c.choices) == 4 and len({x.text for x in c.choices}) == 4


# ---- penalties ----


def greedy_with(client: openai.OpenAI, **penalties) -> list:
    """The greedy chat reply's logprobs (20 alternatives a token) under the given penalties."""
    extra = {"repetition_penalty": penalties.pop("repetition_penalty")} if "repetition_penalty" in penalties else {}
    r = chat(client, temperature=0, logprobs=True, top_logprobs=20, extra=extra, **penalties)
    return r.choices[0].logprobs.content


def check_openai_penalties(content: list, frequency: float, presence: float) -> int:
    """Asserts each greedy token maximises the model's logprob minus the OpenAI penalties of the tokens before
    it (frequency x count + presence x seen), among the 20 most likely; returns at how many steps that token is
    not the model's most likely one (the penalty changed the choice)."""
    counts: Counter[bytes] = Counter()
    changed = 0
    for t in content:
        def penalised(token: bytes, logprob: float) -> float:
            return logprob - frequency * counts[token] - presence * (counts[token] > 0)

        best = max(penalised(bytes(x.bytes), x.logprob) for x in t.top_logprobs)
        assert penalised(bytes(t.bytes), t.logprob) >= best - TOL
        changed += bytes(t.bytes) != bytes(t.top_logprobs[0].bytes)
        counts[bytes(t.bytes)] += 1
    return changed


def test_the_greedy_reply_without_penalties_repeats_itself(client):
    """The baseline the penalty tests change: this model's greedy reply falls into a loop."""
    content = greedy_with(client)
    assert check_openai_penalties(content, 0, 0) == 0
    assert repeats([bytes(t.bytes) for t in content]) >= TOKENS // 2


@pytest.mark.parametrize("frequency,presence", [(2.0, 0.0), (0.5, 0.0), (0.0, 2.0), (0.0, 0.5), (1.0, 1.0)])
def test_frequency_and_presence_penalties_follow_openai_semantics(client, frequency, presence):
    """Each chosen token is the argmax of logprob - frequency x count - presence x [count > 0] (logprobs are the
    model's, before penalties), and the penalty does change some choices."""
    content = greedy_with(client, frequency_penalty=frequency, presence_penalty=presence)
    assert check_openai_penalties(content, frequency, presence) > 0


@pytest.mark.parametrize("penalty", [{"frequency_penalty": 2.0}, {"presence_penalty": 2.0},
                                     {"extra": {"repetition_penalty": 2.0}}], ids=lambda p: str(p))
def test_a_large_penalty_cuts_the_repeats(client, penalty):
    plain = chat_tokens(client, temperature=0)
    penalised = chat_tokens(client, temperature=0, **penalty)
    assert penalised != plain
    assert repeats(penalised) < repeats(plain) // 2


def test_a_negative_frequency_penalty_encourages_repeats(client):
    plain = chat_tokens(client, temperature=1.0, seed=5)
    rewarded = chat_tokens(client, temperature=1.0, seed=5, frequency_penalty=-2.0)
    assert repeats(rewarded) > repeats(plain)


def test_penalties_change_completions_too(client):
    plain = complete(client, temperature=0).choices[0].text
    for kw in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}, {"extra": {"repetition_penalty": 2.0}}):
        assert complete(client, temperature=0, **kw).choices[0].text != plain, kw


# ---- stop and max_tokens ----


def test_a_stop_string_cuts_the_reply_before_it(client):
    whole = chat(client, temperature=0).choices[0].message.content
    stop = whole[6:10]
    assert whole.index(stop) == 6
    for stream in (False, True):
        kw = dict(temperature=0, stop=["never-in-this-text", stop])
        if stream:
            chunks = list(chat(client, stream=True, **kw))
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
            finish = chunks[-1].choices[0].finish_reason
        else:
            r = chat(client, **kw)
            text, finish = r.choices[0].message.content, r.choices[0].finish_reason
            assert r.usage.completion_tokens < TOKENS
        assert (text, finish) == (whole[:6], "stop"), stream


def test_a_stop_string_cuts_a_completion_before_it(client):
    whole = complete(client, temperature=0).choices[0].text
    stop = whole[5:8]
    cut = whole[:whole.index(stop)]
    r = complete(client, temperature=0, stop=stop)
    assert (r.choices[0].text, r.choices[0].finish_reason) == (cut, "stop")
    chunks = list(complete(client, temperature=0, stop=stop, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == cut and chunks[-1].choices[0].finish_reason == "stop"
    r = complete(client, temperature=0, stop="never-in-this-text")
    assert (r.choices[0].text, r.choices[0].finish_reason) == (whole, "length")


@pytest.mark.parametrize("n_tokens", [1, 7, 25])
def test_max_tokens_is_exactly_the_number_of_tokens(client, n_tokens):
    r = chat(client, temperature=1.0, seed=3, max_tokens=n_tokens, logprobs=True)
    assert r.usage.completion_tokens == len(r.choices[0].logprobs.content) == n_tokens
    assert r.choices[0].finish_reason == "length"
    r = chat(client, temperature=1.0, seed=3, max_tokens=None, max_completion_tokens=n_tokens)
    assert r.usage.completion_tokens == n_tokens and r.choices[0].finish_reason == "length"
    c = complete(client, temperature=1.0, seed=3, max_tokens=n_tokens, logprobs=0)
    assert c.usage.completion_tokens == len(c.choices[0].logprobs.tokens) == n_tokens
    assert c.choices[0].finish_reason == "length"


# ---- logprobs ----


@pytest.mark.parametrize("k", [0, 1, 5, 20])
def test_top_logprobs_gives_k_sorted_alternatives_and_greedy_picks_the_first(client, k):
    r = chat(client, temperature=0, max_tokens=12, logprobs=True, top_logprobs=k)
    content = r.choices[0].logprobs.content
    assert len(content) == 12
    for t in content:
        tops = [x.logprob for x in t.top_logprobs]
        assert len(tops) == k and tops == sorted(tops, reverse=True)
        assert t.logprob <= 0 and sum(math.exp(x) for x in tops) <= 1 + TOL
        if k:
            assert bytes(t.bytes) == bytes(t.top_logprobs[0].bytes)
            assert t.logprob == pytest.approx(tops[0], abs=TOL)


def test_logprobs_are_the_models_whatever_the_temperature(client):
    """The first token has the same context at any temperature: the same alternatives and logprobs. Sampled
    tokens are not always the most likely, and their logprob is never above the most likely one's."""
    cold = chat(client, temperature=0, max_tokens=12, logprobs=True, top_logprobs=5).choices[0].logprobs.content
    hot = chat(client, temperature=2.0, seed=8, max_tokens=12, logprobs=True,
               top_logprobs=5).choices[0].logprobs.content
    assert [bytes(x.bytes) for x in hot[0].top_logprobs] == [bytes(x.bytes) for x in cold[0].top_logprobs]
    assert [x.logprob for x in hot[0].top_logprobs] == pytest.approx([x.logprob for x in cold[0].top_logprobs],
                                                                      abs=TOL)
    assert all(t.logprob <= t.top_logprobs[0].logprob + TOL for t in hot)
    assert any(bytes(t.bytes) != bytes(t.top_logprobs[0].bytes) for t in hot)


@pytest.mark.parametrize("k", [0, 3])
def test_completion_logprobs_count_and_order(client, k):
    lp = complete(client, temperature=0, max_tokens=12, logprobs=k).choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == 12
    if k == 0:
        assert lp.top_logprobs is None
        return
    for chosen, tops in zip(lp.token_logprobs, lp.top_logprobs, strict=True):
        values = list(tops.values())
        # at most k: two ids may share a display string, and a dict keeps one of them
        assert 1 <= len(values) <= k and values == sorted(values, reverse=True)
        assert chosen == pytest.approx(values[0], abs=TOL)


def test_logit_bias_is_refused_not_ignored(client):
    """The engine has no logit_bias: a request that needs one answers 400 naming it rather than ignoring it."""
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, temperature=0, logit_bias={"42": 100})
    assert e.value.body["param"] == "logit_bias"
    with pytest.raises(openai.BadRequestError):
        complete(client, temperature=0, logit_bias={"42": 100})


# ---- streaming ----


def test_streaming_gives_the_same_greedy_text_and_logprobs(client):
    kw = dict(temperature=0, logprobs=True, top_logprobs=2, frequency_penalty=0.5)
    full = chat(client, **kw).choices[0]
    chunks = list(chat(client, stream=True, **kw))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == full.message.content
    streamed = [t for ch in chunks if ch.choices[0].logprobs for t in ch.choices[0].logprobs.content]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in full.logprobs.content]

    whole = complete(client, temperature=0, logprobs=1)
    chunks = list(complete(client, temperature=0, logprobs=1, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks) == whole.choices[0].text
    assert [x for ch in chunks for x in ch.choices[0].logprobs.tokens] == whole.choices[0].logprobs.tokens


def test_streaming_gives_the_same_sampled_text_for_a_seed(client):
    full = chat(client, temperature=1.0, seed=9).choices[0].message.content
    chunks = chat(client, temperature=1.0, seed=9, stream=True)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == full
