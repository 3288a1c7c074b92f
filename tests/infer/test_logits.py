"""Batched per-row sampling: every parameter has its effect, per row, whatever the other rows are."""

import random

import pytest
import torch

from colossus.errors import ColossusError
from colossus.infer.logits import RowParams, apply_penalties, argmax_rows, sample_rows, token_logprobs
from colossus.infer.sampling import SamplingParams

LOGITS = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0, -1.0])
N = 4000  # rows drawn at once: frequencies to within about 0.02


def draw(params: SamplingParams, logits: torch.Tensor = LOGITS, n: int = N, seed: int = 0) -> torch.Tensor:
    rows = RowParams([params] * n, [random.Random(seed * 100003 + i) for i in range(n)], logits.numel(), "cpu")
    return sample_rows(logits.repeat(n, 1), rows)


def freq(tokens: torch.Tensor, V: int = LOGITS.numel()) -> torch.Tensor:
    return torch.bincount(tokens, minlength=V).float() / tokens.numel()


def test_draws_follow_the_tempered_distribution():
    for t in (0.5, 1.0, 2.0):
        assert torch.allclose(freq(draw(SamplingParams(temperature=t))), (LOGITS / t).softmax(-1), atol=0.025)


def test_temperature_zero_is_greedy():
    assert draw(SamplingParams(temperature=0), n=5).tolist() == [0] * 5


@pytest.mark.parametrize("kw", [{"temperature": 1e-300}, {"temperature": 1e-6}, {"temperature": 1.0, "top_p": 5e-324},
                                {"temperature": 1.0, "top_p": 1e-50}])
def test_values_that_float32_makes_zero_are_greedy_not_a_crash(kw):
    """A temperature below GREEDY_BELOW would overflow the logits it divides; a top_p that is 0 in float32 keeps the
    top token, as any top_p does. Schemathesis found both (they crashed the engine's step)."""
    logits = torch.tensor([3.0, 60.0, 1.0, 0.5, 0.0, -1.0])  # 60 / 1e-37 overflows float32
    assert draw(SamplingParams(**kw), logits=logits, n=50).tolist() == [1] * 50


def test_chunked_argmax_is_argmax_with_ties_and_nan():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 4096, generator=g)
    x[0, 100] = x[0, 3000] = 50.0  # a tie across chunks: the first wins
    x[1, 300] = x[1, 301] = 50.0  # a tie inside a chunk
    x[2, 2000] = float("nan")  # NaN counts as the largest, as in argmax
    x[3, :] = 1.0  # all equal: id 0
    x[4, 4095] = 50.0  # the very last id
    assert torch.equal(argmax_rows(x), x.argmax(-1))
    assert argmax_rows(x)[:5].tolist() == [100, 300, 2000, 0, 4095]
    for shape in [(2, 4096), (9, 1000), (9, 256)]:  # few rows or an odd vocabulary: the plain argmax
        y = torch.randn(*shape, generator=g)
        assert torch.equal(argmax_rows(y), y.argmax(-1))


def test_top_k_keeps_only_the_k_most_likely():
    f = freq(draw(SamplingParams(temperature=1.0, top_k=2)))
    assert f[2:].sum() == 0 and torch.allclose(f[:2], LOGITS[:2].softmax(-1), atol=0.025)


def test_top_p_keeps_only_the_nucleus():
    p = LOGITS.softmax(-1)  # 0.61, 0.22, 0.08, ...: 0.61 + 0.22 reaches 0.8
    f = freq(draw(SamplingParams(temperature=1.0, top_p=0.8)))
    assert f[2:].sum() == 0 and torch.allclose(f[:2], p[:2] / p[:2].sum(), atol=0.025)
    assert freq(draw(SamplingParams(temperature=1.0, top_p=0.01)))[0] == 1  # the top token always stays


def test_min_p_drops_tokens_far_below_the_top():
    p = LOGITS.softmax(-1)
    f = freq(draw(SamplingParams(temperature=1.0, min_p=0.3)))  # keeps p >= 0.3 * p_max: tokens 0 and 1
    assert f[2:].sum() == 0 and f[1] > 0.2 and torch.allclose(f[:2], p[:2] / p[:2].sum(), atol=0.025)


def test_penalties_follow_openai_and_hf_semantics():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    counts = torch.tensor([[2.0, 1.0, 0.0, 0.0]])  # token 0 generated twice, token 1 once
    prompt = torch.tensor([[False, False, True, False]])  # token 2 is in the prompt

    def pen(**kw):
        return apply_penalties(logits, RowParams([SamplingParams(**kw)], [random.Random()], 4, "cpu"), counts, prompt)

    assert pen(presence_penalty=0.5).tolist() == [[1.5, -2.5, 1.0, 0.5]]  # output only, once per token
    assert pen(frequency_penalty=0.5).tolist() == [[1.0, -2.5, 1.0, 0.5]]  # once per occurrence
    assert pen(repetition_penalty=2.0).tolist() == [[1.0, -4.0, 0.5, 0.5]]  # prompt and output, by sign
    assert pen(presence_penalty=-1.0).tolist() == [[3.0, -1.0, 1.0, 0.5]]  # negative: encourages
    assert pen().tolist() == logits.tolist()


def test_each_row_keeps_its_own_parameters_and_draws_in_a_mixed_batch():
    params = [SamplingParams(temperature=0), SamplingParams(temperature=1.0, top_k=1),
              SamplingParams(temperature=1.0, seed=3), SamplingParams(temperature=1.0, top_p=0.5, seed=4),
              SamplingParams(temperature=5.0, min_p=0.9, seed=5), SamplingParams(temperature=1.0, seed=6)]
    logits = torch.randn(len(params), 50, generator=torch.Generator().manual_seed(0))
    batch = RowParams(params, [random.Random(i) for i in range(len(params))], 50, "cpu")
    together = sample_rows(logits, batch).tolist()
    for i, p in enumerate(params):  # the same row alone, with a generator in the same state
        alone = sample_rows(logits[i:i + 1], RowParams([p], [random.Random(i)], 50, "cpu")).item()
        assert together[i] == alone
    assert together[0] == logits[0].argmax().item()  # greedy
    assert together[1] == logits[1].argmax().item()  # top_k=1 is greedy too
    probs = (logits[4] / 5.0).softmax(-1)
    assert probs[together[4]] >= 0.9 * probs.max()  # min_p: only tokens close to the top


def test_logprobs_are_the_models_and_top_k_is_sorted():
    logits = torch.randn(3, 20, generator=torch.Generator().manual_seed(1))
    params = [SamplingParams(logprobs=2), SamplingParams(), SamplingParams(logprobs=20, repetition_penalty=3.0)]
    rows = RowParams(params, [random.Random(i) for i in range(3)], 20, "cpu")
    tokens = sample_rows(logits, rows)
    chosen, top_v, top_i = token_logprobs(logits, tokens, rows)
    ref = logits.log_softmax(-1)
    assert rows.logprob_list == [0, 2] and top_v.shape == (2, 20)
    assert torch.allclose(chosen, ref[[0, 2], tokens[[0, 2]]])
    assert torch.allclose(top_v[1].exp().sum(), torch.tensor(1.0)) and bool((top_v[:, :-1] >= top_v[:, 1:]).all())
    assert top_i[0, 0].item() == logits[0].argmax().item()


@pytest.mark.parametrize("kw", [{"min_p": 1.5}, {"presence_penalty": 2.5}, {"frequency_penalty": -3},
                                {"repetition_penalty": 0}, {"logprobs": -1}, {"stop": ["ok", ""]},
                                {"temperature": float("nan")}])
def test_bad_params_name_the_field(kw):
    with pytest.raises(ColossusError, match=next(iter(kw))):
        SamplingParams(**kw)


def test_stop_accepts_a_string_or_a_list():
    assert SamplingParams(stop="END").stop == ("END",)
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")
