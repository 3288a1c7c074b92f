import pytest
import torch

from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.train.optim import Muon, build_optimizers, lr_factor, orthogonalise


def test_orthogonalise_makes_singular_values_near_one():
    torch.manual_seed(0)
    g = torch.randn(16, 48)
    s = torch.linalg.svdvals(orthogonalise(g))
    assert s.min() > 0.5 and s.max() < 1.3
    assert orthogonalise(torch.randn(48, 16)).shape == (48, 16)


def test_muon_lowers_a_loss():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 8))
    target = torch.randn(8, 8)
    opt = Muon([w], lr=0.05)
    first = None
    for _ in range(150):
        loss = ((w - target) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


def test_orthogonalise_takes_a_stack_of_matrices_one_by_one():
    torch.manual_seed(0)
    g = torch.randn(3, 16, 48)
    torch.testing.assert_close(orthogonalise(g), torch.stack([orthogonalise(x) for x in g]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("muon, experts", [(False, 0), (True, 0), (False, 4), (True, 4)])
def test_every_parameter_is_optimised_once(muon, experts):
    m = GPT(ModelConfig(vocab_size=64, seq_len=16, n_layer=2, d_model=32, n_head=2, n_kv_head=2, mlp="swiglu",
                        n_experts=experts))
    opts = build_optimizers(m, 1e-3, 1e-2, 1e-3, 0.0, muon=muon)
    seen = [id(p) for o in opts for g in o.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in m.parameters())
    assert len(opts) == (2 if muon else 1)


def test_schedules():
    assert lr_factor(0, 100, 10, "wsd", 0.1, 0.2) == pytest.approx(0.1)
    assert lr_factor(50, 100, 10, "wsd", 0.1, 0.2) == 1.0
    assert lr_factor(99, 100, 10, "wsd", 0.1, 0.2) == pytest.approx(0.1 + 0.9 / 20, abs=1e-6)
    assert lr_factor(10, 100, 10, "cosine", 0.0, 0.0) == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "cosine", 0.0, 0.0) == pytest.approx(0.0)
    assert lr_factor(70, 100, 10, "constant", 0.0, 0.0) == 1.0
    with pytest.raises(ValueError):
        lr_factor(50, 100, 10, "zigzag", 0.0, 0.0)
