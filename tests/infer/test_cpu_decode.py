"""The C forward step (colossus/infer/cpu_decode.c): the same network as GPT.forward, prefills and decode
rows in one call, float32 or bfloat16 weights, results that do not depend on the batch, clear errors, and
a fallback to PyTorch ops where no C compiler is found."""

from __future__ import annotations

import copy

import pytest
import torch

from colossus.errors import ColossusError
from colossus.infer import cpu_decode
from colossus.infer.cpu_decode import CpuDecoder, load_library, pack
from colossus.infer.engine import Engine
from colossus.infer.kv_pool import SlotPool
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

SHAPES = {
    "swiglu-gqa-qknorm": ModelConfig(vocab_size=300, seq_len=64, n_layer=2, d_model=64, n_head=4, n_kv_head=2,
                                     mlp="swiglu"),
    "relu2-mha-plain": ModelConfig(vocab_size=300, seq_len=64, n_layer=3, d_model=48, n_head=3, n_kv_head=3,
                                   qk_norm=False),  # widths that are not multiples of the 16-wide vectors
    # heads 64 wide: attention's vector path (heads of 32 to 128), as the served models' heads
    "swiglu-gqa-wide-heads": ModelConfig(vocab_size=300, seq_len=64, n_layer=2, d_model=128, n_head=2, n_kv_head=1,
                                         mlp="swiglu"),
}

needs_c = pytest.mark.skipif(load_library() is None, reason="no C compiler on this machine")


def random_model(cfg: ModelConfig, weights: str = "float32") -> GPT:
    """Spread-out random weights (the default init zeroes the residual projections); for bfloat16, matmul
    weights rounded as the engine rounds them."""
    torch.manual_seed(0)
    m = GPT(cfg).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    if weights == "bfloat16":
        m.round_matmul_weights(torch.bfloat16)
    return m


@needs_c
@pytest.mark.parametrize("weights", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_prefill_and_decode_rows_in_one_call_match_the_full_forward(shape, weights):
    cfg = SHAPES[shape]
    model = random_model(cfg, weights)
    seqs = [torch.randint(0, cfg.vocab_size, (n,)).tolist() for n in (11, 5, 17)]
    pool = SlotPool(cfg, 4, cfg.seq_len)
    dec = CpuDecoder.create(model, pool, weights)
    with torch.no_grad():
        full = [model(torch.tensor([s]))[0] for s in seqs]  # (T, V) each
    scale = max(f.abs().max().item() for f in full)
    # slot 0's first 8 tokens as a prompt alone
    got0 = dec.step(seqs[0][:8], list(range(8)), [0] * 8)
    assert torch.allclose(got0, full[0][:8], atol=1e-5 * scale, rtol=0)
    # then slot 0 decodes its 9th token while slots 1 and 2 take whole prompts; logits of three rows only
    tokens = [seqs[0][8], *seqs[1], *seqs[2]]
    positions = [8, *range(5), *range(17)]
    slots = [0] + [1] * 5 + [2] * 17
    out = dec.step(tokens, positions, slots, out_rows=[0, 5, 22])
    assert out.shape == (3, cfg.vocab_size)
    for got, want in zip(out, [full[0][8], full[1][4], full[2][16]], strict=True):
        assert torch.allclose(got, want, atol=1e-5 * scale, rtol=0)
    # the rest of slot 0, one token a step, from the keys and values the calls above left in the pool
    for t in range(9, 11):
        assert torch.allclose(dec.step([seqs[0][t]], [t], [0])[0], full[0][t], atol=1e-5 * scale, rtol=0)


@needs_c
@pytest.mark.parametrize("shape", ["swiglu-gqa-qknorm", "swiglu-gqa-wide-heads"])
@pytest.mark.parametrize("weights,kv", [("float32", torch.float32), ("bfloat16", torch.float32),
                                        ("float32", torch.bfloat16)])
def test_the_c_step_matches_gpt_decode_step_on_the_same_pool(weights, kv, shape):
    cfg = SHAPES[shape]
    model = random_model(cfg, weights)
    torch_pool, c_pool = (SlotPool(cfg, 4, cfg.seq_len, kv_dtype=kv) for _ in range(2))
    torch_pool.k.normal_(), torch_pool.v.normal_()
    c_pool.k.copy_(torch_pool.k), c_pool.v.copy_(torch_pool.v)
    tokens, positions = [3, 30, 7, 250], [20, 4, 33, 9]
    with torch.inference_mode():
        view = torch_pool.decode_view(positions)
        want = model.decode_step(torch.tensor(tokens), view.positions, view)
    got = CpuDecoder.create(model, c_pool, weights).step(tokens, positions)
    assert torch.allclose(got, want, atol=1e-5 * want.abs().max().item(), rtol=0)
    if kv == torch.float32:
        assert torch.allclose(c_pool.k, torch_pool.k, atol=1e-5) and torch.allclose(c_pool.v, torch_pool.v, atol=1e-5)
        return
    # bfloat16: the new keys and values rounded as PyTorch rounds (to nearest even). Their float32 values
    # differ in the last bits, which may tip a rare one to the next bfloat16; truncating would tip half.
    written = len(tokens) * cfg.n_layer * cfg.n_kv_head * cfg.head_dim
    for c, t in ((c_pool.k, torch_pool.k), (c_pool.v, torch_pool.v)):
        assert c.dtype == torch.bfloat16
        assert torch.allclose(c.float(), t.float(), atol=0, rtol=2**-7)
        assert (c != t).sum() <= 0.02 * written


@needs_c
@pytest.mark.parametrize("kv", [torch.float32, torch.bfloat16])
def test_prompts_and_decode_rows_read_a_bfloat16_pool_as_the_torch_ops_do(kv):
    """Prefill rows write their keys and values before later rows of the prompt attend to them, in either type."""
    cfg = ModelConfig(  # heads 12 wide: not a whole 16-wide vector (SHAPES' heads are 16)
        vocab_size=300, seq_len=64, n_layer=2, d_model=48, n_head=4, n_kv_head=2, qk_norm=False)
    model = random_model(cfg)
    seq = torch.randint(0, cfg.vocab_size, (13,)).tolist()
    torch_pool, c_pool = (SlotPool(cfg, 2, cfg.seq_len, kv_dtype=kv) for _ in range(2))
    with torch.inference_mode():
        want = model(torch.tensor([seq[:12]]), cache=torch_pool.prefill_view(1, 0, 12),
                     positions=torch.arange(12))[0, -1]
        view = torch_pool.decode_view([0, 12])
        step = model.decode_step(torch.tensor([seq[0], seq[12]]), view.positions, view)[1]
    dec = CpuDecoder.create(model, c_pool)
    got = dec.step(seq[:12], list(range(12)), [1] * 12, out_rows=[11])[0]
    got_step = dec.step([seq[0], seq[12]], [0, 12], [0, 1])[1]
    for g, w in ((got, want), (got_step, step)):
        assert torch.allclose(g, w, atol=1e-4 * w.abs().max().item(), rtol=0)


@needs_c
def test_a_rows_logits_are_the_same_bits_alone_or_in_any_batch():
    cfg = SHAPES["swiglu-gqa-qknorm"]
    model = random_model(cfg, "bfloat16")
    pool = SlotPool(cfg, 8, cfg.seq_len)
    pool.k.normal_(), pool.v.normal_()
    dec = CpuDecoder.create(model, pool, "bfloat16")
    alone = dec.step([42], [30], [7])
    for others in (1, 3, 6):  # 1 + others rows: each block of rows takes a different code path
        slots = [7, *range(others)]
        batched = dec.step([42, *range(100, 100 + others)], [30, *range(10, 10 + others)], slots)
        assert torch.equal(batched[0], alone[0])


@needs_c
def test_more_threads_give_the_same_bits():
    cfg = SHAPES["relu2-mha-plain"]
    model = random_model(cfg)
    outs = []
    for threads in (1, 2, 3):
        pool = SlotPool(cfg, 4, cfg.seq_len)
        dec = CpuDecoder.create(model, pool, threads=threads)
        assert dec.threads == threads
        prompt = dec.step(list(range(7, 20)), list(range(13)), [2] * 13, out_rows=[12])
        outs.append((prompt, dec.step([5, 6, 7], [13, 0, 0], [2, 0, 1]), pool.k.clone()))
    for other in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outs[0], other, strict=True))
    with pytest.raises(ValueError, match="threads"):
        dec.threads = 0


@needs_c
def test_bad_rows_are_refused_with_a_reason_and_nothing_written():
    cfg = SHAPES["relu2-mha-plain"]
    pool = SlotPool(cfg, 2, cfg.seq_len)
    dec = CpuDecoder.create(random_model(cfg), pool)
    for tokens, positions, slots, reason in (([1], [cfg.seq_len], [0], "position or slot"),
                                             ([1], [0], [2], "position or slot"),
                                             ([cfg.vocab_size], [0], [0], "token id"),
                                             ([-1], [0], [0], "token id")):
        with pytest.raises(RuntimeError, match=reason):
            dec.step(tokens, positions, slots)
    for out_rows in ([1], [0, 0]):
        with pytest.raises(RuntimeError, match="output row"):
            dec.step([1], [0], [0], out_rows=out_rows)
    with pytest.raises(ValueError, match="one entry per row"):
        dec.step([1, 2], [0], [0])
    assert not pool.k.any() and not pool.v.any()


def test_packed_panels_hold_every_weight_once_in_the_documented_order():
    w = torch.arange(100 * 3, dtype=torch.float32).view(100, 3)  # 100 outputs: one full panel and a padded one
    p32 = pack(w, torch.float32)
    assert p32.shape == (2, 3, 64)
    assert torch.equal(p32[1, :, :36], w[64:].t()) and not p32[1, :, 36:].any()
    p16 = pack(w, torch.bfloat16).view(2, 3, 2, 16, 2)  # pairs (j, j + 16) in each 32 outputs
    assert torch.equal(p16[0, :, 0, :, 0].float(), w[0:16].t().bfloat16().float())
    assert torch.equal(p16[0, :, 0, :, 1].float(), w[16:32].t().bfloat16().float())


def test_without_a_compiler_the_engine_falls_back_to_torch_ops(monkeypatch, tok):
    monkeypatch.setattr(cpu_decode, "compiler", lambda: None)
    monkeypatch.setattr(cpu_decode, "_tried", False)
    monkeypatch.setattr(cpu_decode, "_lib", None)
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=32, n_layer=1, d_model=32, n_head=2, n_kv_head=2))
    assert cpu_decode.load_library() is None
    assert Engine(model, tok, max_batch=2).kernel == "torch"
    with pytest.raises(ColossusError, match="C compiler"):
        Engine(model, tok, max_batch=2, kernel="c")


def test_a_broken_compiler_is_a_warning_not_a_failure(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("COLOSSUS_CACHE", str(tmp_path))
    monkeypatch.setattr(cpu_decode, "compiler", lambda: "/bin/false")
    monkeypatch.setattr(cpu_decode, "_tried", False)
    monkeypatch.setattr(cpu_decode, "_lib", None)
    assert cpu_decode.load_library() is None
    assert "could not be built" in caplog.text
    assert not list(tmp_path.rglob("*.so"))


def test_bfloat16_weights_round_the_model_so_that_every_path_agrees(tok):
    model = GPT(ModelConfig(vocab_size=tok.vocab_size, seq_len=32, n_layer=1, d_model=32, n_head=2, n_kv_head=2))
    kept = copy.deepcopy(model)
    engine = Engine(model, tok, max_batch=2, weights="bfloat16", kernel="torch")
    assert engine.pool.k.dtype == torch.bfloat16  # the KV cache follows the weights unless told otherwise
    for w, w0 in zip(model.matmul_weights(), kept.matmul_weights(), strict=True):
        assert torch.equal(w, w0.to(torch.bfloat16).float()) and w.dtype == torch.float32
    assert torch.equal(model.embed.weight, kept.embed.weight)  # a lookup, not a matmul: kept as it was
    with pytest.raises(ColossusError, match="weights must be one of"):
        Engine(model, tok, max_batch=2, weights="int4")
