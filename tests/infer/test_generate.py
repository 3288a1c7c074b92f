import copy

import pytest
import torch

from colossus.infer.generate import generate_batch, stream
from colossus.infer.sampling import SamplingParams


def greedy_reference(model, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        ids.append(int(model(torch.tensor([ids], device=next(model.parameters()).device))[0, -1].argmax()))
    return ids[len(prompt):]


def test_stream_matches_a_full_recompute(tiny_model):
    prompt = [1, 5, 9, 13, 2]
    got = [t for t, _ in stream(tiny_model, prompt, SamplingParams(temperature=0, max_tokens=12), set())]
    assert got == greedy_reference(tiny_model, prompt, 12)


def test_stream_stops_at_a_stop_token(tiny_model):
    prompt = [1, 5, 9]
    ref = greedy_reference(tiny_model, prompt, 12)
    stop = ref[4]
    got = [t for t, _ in stream(tiny_model, prompt, SamplingParams(temperature=0, max_tokens=12), {stop})]
    assert got == ref[: ref.index(stop)]


def test_same_seed_same_text(tiny_model):
    p = SamplingParams(temperature=1.0, max_tokens=20, seed=11)
    a = [t for t, _ in stream(tiny_model, [1, 2, 3], p, set())]
    b = [t for t, _ in stream(tiny_model, [1, 2, 3], p, set())]
    c = [t for t, _ in stream(tiny_model, [1, 2, 3], SamplingParams(temperature=1.0, max_tokens=20, seed=12), set())]
    assert a == b and a != c


def test_batch_equals_one_by_one(tiny_model):
    prompts = [[1, 5, 9], [1, 7, 7], [1, 2, 3, 4, 5], [1, 8]]
    batch = generate_batch(tiny_model, prompts, 8, stop_ids=set(), batch_size=2)
    for p, c in zip(prompts, batch, strict=True):
        assert c.ids == greedy_reference(tiny_model, p, 8)
        assert c.finish_reason == "length" and len(c.probs) == 8
        assert all(0 < q <= 1 for q in c.probs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_a_model_on_the_gpu_generates_there_without_being_told_the_device(tiny_model):
    model = copy.deepcopy(tiny_model).to("cuda")
    prompt = [1, 5, 9, 13, 2]
    ref = greedy_reference(model, prompt, 12)
    assert [t for t, _ in stream(model, prompt, SamplingParams(temperature=0, max_tokens=12), set())] == ref
    assert generate_batch(model, [prompt], 12, stop_ids=set())[0].ids == ref
