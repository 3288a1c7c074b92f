"""Training-step throughput of Colossus's GPT against Hugging Face's Llama of the same shape, in one run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/train_step.py [--preset cpu] [--steps 20]

Both models get the same shape (layers, width, heads, vocabulary, untied embeddings), the same batch
of random tokens, the same optimizer (AdamW) and the same autocast dtype; each is timed over the same
number of steps after warm-up, alternating so that neither is favoured by the machine's state. The
ratio is tokens/s of ours over theirs (higher is better for us). Speed does not depend on the
weights' values, so both start from their own random initialisation.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from colossus.config import load_config
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT
from colossus.train.device import pick_device


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
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

    ours = GPT(cfg).to(device.torch)
    theirs = llama_of(cfg).to(device.torch)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-4)

    def step_ours():
        with device.autocast(), device.attention_backend():
            loss = ours(x, y)
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)
        device.synchronize()

    def step_theirs():
        with device.autocast():
            loss = theirs(input_ids=x, labels=y).loss
        loss.backward()
        opt_theirs.step()
        opt_theirs.zero_grad(set_to_none=True)
        device.synchronize()

    for f in (step_ours, step_theirs):
        time_steps(f, 3)  # warm-up
    ours_t, theirs_t = [], []
    for _ in range(args.rounds):
        ours_t += time_steps(step_ours, args.steps)
        theirs_t += time_steps(step_theirs, args.steps)
    tok = B * T
    a, b = tok / statistics.median(ours_t), tok / statistics.median(theirs_t)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, device {device.name}, dtype {str(device.dtype)[6:]}")
    print(f"shape: {cfg.n_layer} layers, width {cfg.d_model}, {cfg.n_head} heads, vocab {cfg.vocab_size}, "
          f"seq {T}, batch {B}; params ours {n_ours / 1e6:.2f}M, HF Llama {n_theirs / 1e6:.2f}M")
    print(f"colossus GPT : {a:,.0f} tokens/s (median of {len(ours_t)} steps)")
    print(f"HF Llama     : {b:,.0f} tokens/s (median of {len(theirs_t)} steps)")
    print(f"ratio        : {a / b:.2f}x")


if __name__ == "__main__":
    main()
