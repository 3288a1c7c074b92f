"""Training-step throughput of Colossus's GPT against Hugging Face's Llama of the same shape, in one run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/train_step.py [--preset cpu] [--steps 20] [--no-compile]

Both models get the same shape (layers, width, heads, vocabulary, untied embeddings), the same batch
of random tokens, the same optimizer (AdamW) and the preset's dtype; each runs eagerly and through
torch.compile (what the preset trains with), each timed over the same number of steps after warm-up,
alternating so that none is favoured by the machine's state. The ratio is tokens/s over HF Llama's,
eager (higher is better for us). Speed does not depend on the
weights' values, so both start from their own random initialisation.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from colossus.config import load_config
from colossus.evals.report import describe_machine
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.train.device import Device, machine, pick_device


def llama_of(cfg: ModelConfig):
    from transformers import LlamaConfig, LlamaForCausalLM

    hf = LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.mlp_hidden,
                     num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                     num_key_value_heads=cfg.n_kv_head, max_position_embeddings=cfg.seq_len,
                     tie_word_embeddings=False, attn_implementation="sdpa")
    return LlamaForCausalLM(hf)


def time_steps(step, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def optimizer_step(model: torch.nn.Module, opt: torch.optim.Optimizer, loss_of: Callable, device: Device
                   ) -> Callable[[], None]:
    """One timed training step of a contender: forward (loss_of), backward, the optimizer."""
    def step() -> None:
        with device.autocast(), device.attention_backend():
            loss = loss_of(model)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        device.synchronize()
    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    args = p.parse_args()
    run = load_config(args.preset)
    m = run.model
    cfg = ModelConfig(vocab_size=args.vocab, seq_len=m.seq_len, n_layer=m.n_layer, d_model=m.d_model,
                      n_head=m.n_head, n_kv_head=m.n_kv_head, mlp=m.mlp)
    device = pick_device(run.pretrain.device, run.pretrain.dtype)
    B, T = run.pretrain.batch_size, cfg.seq_len
    torch.manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (B, T), device=device.torch)
    y = torch.randint(0, cfg.vocab_size, (B, T), device=device.torch)

    ours, theirs = GPT(cfg).to(device.torch), llama_of(cfg).to(device.torch)
    contenders = {"colossus GPT": (ours, lambda model: model(x, y)),
                  "HF Llama": (theirs, lambda model: model(input_ids=x, labels=y).loss)}
    if not args.no_compile:  # each compiled model is its own contender, with its own optimizer state
        contenders |= {f"{name}, torch.compile": (torch.compile(model), loss_of)
                       for name, (model, loss_of) in list(contenders.items())}
    steps = {name: optimizer_step(model, torch.optim.AdamW(model.parameters(), lr=1e-4), loss_of, device)
             for name, (model, loss_of) in contenders.items()}
    for step in steps.values():
        time_steps(step, 3)  # warm-up (and the compile)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):  # alternating, so that none is favoured by the machine's state
        for name, step in steps.items():
            times[name] += time_steps(step, args.steps)

    peak, source = device.peak_flops()
    print(f"machine: {describe_machine(machine(device))}; torch {torch.__version__}")
    print(f"shape: {cfg.n_layer} layers, width {cfg.d_model}, {cfg.n_head} heads, vocab {cfg.vocab_size}, "
          f"seq {T}, batch {B}; params ours {ours.num_params() / 1e6:.2f}M, HF Llama "
          f"{sum(p.numel() for p in theirs.parameters()) / 1e6:.2f}M")
    tok_s = {name: B * T / statistics.median(t) for name, t in times.items()}
    flops = ours.flops_per_token()  # ours for both rows: the Llama's SwiGLU MLP has a few FLOPs more
    print(f"| model | tokens/s (median of {args.rounds * args.steps} steps) | MFU vs {source} {peak / 1e12:.2f} "
          f"TFLOP/s | over HF Llama, eager |")
    print("|---|---|---|---|")
    for name, v in tok_s.items():
        print(f"| {name} | {v:,.0f} | {100 * v * flops / peak:.1f}% | {v / tok_s['HF Llama']:.2f}x |")


if __name__ == "__main__":
    main()
