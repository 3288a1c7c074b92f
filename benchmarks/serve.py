"""Serving latency and throughput of `colossus serve` against `transformers serve --continuous-batching`,
the same streamed chat workload sent to both, one server after the other, in one run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/serve.py --weights float32 bfloat16 --out runs/serve_bench.json \
        --plot runs/serve_bench.png
    .venv/bin/python benchmarks/serve.py --models ref8.7m --weights float32 --kv-dtype bfloat16
    .venv/bin/python benchmarks/serve.py --models ref8.7m --concurrency 1 8 --requests 8 16 --skip-peer

Metrics (TTFT, TPOT, ITL, E2E latency, request and output-token throughput) follow vLLM's serving
benchmark; benchmarks/serve_client.py says exactly how each is computed.

Model shapes (--models):
  speedrun  the `cpu` preset's shape (colossus/config.py), vocabulary 4096
  ref8.7m   the issue's reference: an 8.7M-parameter Llama, 6 layers, width 256, vocabulary 8192
  100m      about 100M parameters: 12 layers, width 768, vocabulary 8192
Both sides get the same layers, width, heads, vocabulary, untied embeddings and a SwiGLU MLP of the
same hidden size (so the `cpu` preset's ReLU^2 MLP becomes a SwiGLU one of equal parameters and FLOPs).
The one difference left: our GPT RMS-normalises queries and keys (QK-norm), the Llama does not.
Speed does not depend on the weights' values, so both get random weights; generation is held to a fixed
length (ours: ignore_eos; the peer's Llama is saved without an end-of-sequence id, since its server
refuses `ignore_eos`), and every request's output length is checked against the usage it reports.

Prompts: a shared system prompt and a short conversation from the synthetic world (fixed seed), 30-60
tokens; every request's conversation is a different one. Temperature 0 on both sides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: `python benchmarks/serve.py`

from benchmarks.cpu_header import cpu_facts, describe  # noqa: E402
from benchmarks.serve_client import run_async, run_level, summarize  # noqa: E402
from colossus.config import load_config  # noqa: E402
from colossus.data.chat_template import render_prompt  # noqa: E402
from colossus.data.prepare import chat_texts  # noqa: E402
from colossus.data.tokenizer import Tokenizer  # noqa: E402
from colossus.model.config import ModelConfig  # noqa: E402
from colossus.model.gpt import GPT  # noqa: E402
from colossus.model.io import save_model  # noqa: E402
from colossus.world.build import WorldConfig, build_world  # noqa: E402

SYSTEM = "You are a helpful assistant that never makes things up."
PROMPT_TOKENS = (30, 60)
OURS, PEER = "colossus", "transformers"
# the issue's figures for the ref8.7m shape, measured on this machine: output tok/s by concurrency
ISSUE_PEER = {"transformers serve --continuous-batching": {1: 126, 8: 594, 32: 791},
              "llama.cpp server (Python)": {1: 332}}


@dataclass
class Shape:
    name: str
    cfg: ModelConfig
    requests: dict[int, int]  # default requests per concurrency level
    note: str


def shapes() -> dict[str, Shape]:
    m = load_config("cpu").model
    speedrun = ModelConfig(vocab_size=4096, seq_len=m.seq_len, n_layer=m.n_layer, d_model=m.d_model,
                           n_head=m.n_head, n_kv_head=m.n_kv_head, mlp="swiglu")
    # mlp_ratio 3.75 gives a SwiGLU hidden size of 640: 8.71M parameters with untied embeddings
    ref = ModelConfig(vocab_size=8192, seq_len=512, n_layer=6, d_model=256, n_head=4, n_kv_head=4,
                      mlp="swiglu", mlp_ratio=3.75)
    big = ModelConfig(vocab_size=8192, seq_len=512, n_layer=12, d_model=768, n_head=12, n_kv_head=12, mlp="swiglu")
    many = {1: 16, 8: 32, 32: 64}
    return {
        "speedrun": Shape("speedrun", speedrun, many, f"`cpu` preset shape (MLP {m.mlp} -> swiglu, equal size)"),
        "ref8.7m": Shape("ref8.7m", ref, many, "the issue's reference Llama shape"),
        "100m": Shape("100m", big, {1: 4, 8: 16, 32: 32}, "about 100M parameters"),
    }


# ---- model directories ----------------------------------------------------------------------------

def world_tokenizers(vocab_sizes: set[int], out: Path) -> tuple[dict[int, Path], list[dict]]:
    """Tokenizers of exactly each vocabulary size, trained on a synthetic world large enough to fill
    8192 entries (the output of random weights can be any id, so every id must decode), and the world's
    chats for prompts."""
    world = build_world(WorldConfig(entities=2500, docs_per_entity=4, qa_per_entity=2))
    texts = [d["text"] for d in world.documents] + list(chat_texts(world.chats))
    paths = {}
    for v in sorted(vocab_sizes):
        tok = Tokenizer.train(texts, vocab_size=v)
        if tok.vocab_size != v:
            raise SystemExit(f"tokenizer reached {tok.vocab_size} entries, not {v}")
        paths[v] = out / f"tokenizer-{v}.json"
        tok.save(paths[v])
    return paths, world.chats


def pick_conversations(chats: list[dict], tok: Tokenizer, n: int, max_prompt: int, seed: int) -> list[list[dict]]:
    """n different conversations (system prompt + the turns before an assistant reply), each 30-60
    tokens in our chat template."""
    lo, hi = PROMPT_TOKENS[0], min(PROMPT_TOKENS[1], max_prompt)
    pool = []
    for c in chats:
        msgs = [m for m in c["messages"] if m["role"] != "system"]
        last_user = max(i for i, m in enumerate(msgs) if m["role"] == "user")
        conv = [{"role": "system", "content": SYSTEM}] + [{"role": m["role"], "content": m["content"]}
                                                          for m in msgs[:last_user + 1]]
        if lo <= len(render_prompt(tok, conv)) <= hi:
            pool.append(conv)
    if len(pool) < n:
        raise SystemExit(f"only {len(pool)} conversations of {lo}-{hi} tokens, {n} wanted")
    return random.Random(seed).sample(pool, n)


def save_ours(shape: Shape, tokenizer: Path, out: Path) -> int:
    torch.manual_seed(0)
    model = GPT(shape.cfg)
    save_model(out, model, tokenizer)
    return sum(p.numel() for p in model.parameters())


# our template (colossus/data/chat_template.py), with the space our tokenizer puts before every text
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ '<|' + m['role'] + '|>' }}{{ ' ' + m['content'] }}"
                 "<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")


def llama_config(c: ModelConfig):
    """The LlamaConfig of our shape c (untied embeddings, SwiGLU of the same hidden size), with no special
    token ids: generation runs to max_tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.mlp_hidden,
                       num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head,
                       max_position_embeddings=c.seq_len, rope_theta=c.rope_theta, rms_norm_eps=c.norm_eps,
                       tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None)


def save_peer(shape: Shape, tokenizer: Path, out: Path) -> int:
    """A LlamaForCausalLM of the same shape, and a tokenizer transformers can load (our tokenizer.json
    wrapped in PreTrainedTokenizerFast, with our chat template). No end-of-sequence id: generation runs
    to max_tokens, since the server has no ignore_eos."""
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(shape.cfg))
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = None
    model.generation_config.pad_token_id = None
    model.save_pretrained(out)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tokenizer), bos_token="<|bos|>", pad_token="<|pad|>",
                                  chat_template=CHAT_TEMPLATE)
    tok.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


# ---- servers --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server subprocess in its own process group, its output in a log file; stopped on exit."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path, threads: int | None = None):
        self.name, self.argv, self.port, self.log, self.threads = name, argv, port, log, threads
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)  # ours first, then theirs
        env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)  # torch's intra-op threads, the same for both servers
        self._log = open(self.log, "wb")  # noqa: SIM115 (closed in __exit__)
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=REPO)
        return self

    def wait_healthy(self, timeout_s: float = 600.0, path: str = "/health") -> float:
        """Seconds until GET path answers 200 (a server without /health: path="/v1/models")."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} server exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                if httpx.get(self.base + path, timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{self.name} server not healthy after {timeout_s:.0f}s:\n{self.tail()}")

    def model_id(self, fallback: str) -> str:
        try:
            data = httpx.get(self.base + "/v1/models", timeout=10).json().get("data") or []
            return data[0]["id"] if data else fallback
        except (httpx.HTTPError, ValueError, KeyError):
            return fallback

    def peak_rss_mb(self) -> float | None:
        """The server's peak resident memory (Linux's VmHWM), read before it stops."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def tail(self, n: int = 3000) -> str:
        return self.log.read_bytes()[-n:].decode("utf-8", "replace")

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def server_argv(side: str, model_dir: Path, port: int, weights: str, extra: list[str] | None = None,
                kv_dtype: str | None = None, device: str = "cpu") -> list[str]:
    """weights: float32, or bfloat16 (on CPU ours rounds its matmul weights and keeps float32 arithmetic; on
    a GPU, and on the peer's side everywhere, the whole model is bfloat16, its KV cache too). kv_dtype: our
    KV cache's type (None: as the weights). extra: more arguments for our server."""
    if side == OURS:  # conversations go to a database of the run's own, not the user's
        kv = ["--kv-dtype", kv_dtype] if kv_dtype else []
        return [sys.executable, "-m", "colossus.cli", "serve", "--model", str(model_dir), "--host", "127.0.0.1",
                "--port", str(port), "--db", str(model_dir.parent / f"{model_dir.name}.sqlite"), "--weights", weights,
                "--device", device, *kv, *(extra or [])]
    return [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir), "--continuous-batching",
            "--device", device, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--dtype", weights]


def payload(side: str, model: str, conv: list[dict], max_tokens: int) -> dict:
    p = {"model": model, "messages": conv, "max_tokens": max_tokens, "temperature": 0.0, "stream": True,
         "stream_options": {"include_usage": True}}
    if side == OURS:
        p["ignore_eos"] = True  # the peer answers 422 to this field: its model has no end id instead
    return p


def bench_server(side: str, model_dir: Path, convs: list[list[dict]], levels: list[tuple[int, int]],
                 args, log: Path, weights: str) -> list[dict]:
    rows = []
    port = free_port()
    argv = server_argv(side, model_dir, port, weights, args.ours_args, args.kv_dtype, args.device)
    kv = (args.kv_dtype or weights) if side == OURS else weights
    with Server(side, argv, port, log, args.threads) as srv:
        load_s = srv.wait_healthy()
        # the peer answers /v1/models by scanning the Hugging Face cache; it is pinned to its one model anyway
        model = srv.model_id(str(model_dir)) if side == OURS else str(model_dir)
        url = srv.base + "/v1/chat/completions"
        print(f"  {side}: healthy after {load_s:.1f}s; warm-up {args.warmup} requests", flush=True)
        if args.warmup:
            warm = [payload(side, model, c, args.output_tokens) for c in convs[:args.warmup]]
            res, _ = run_async(run_level(url, warm, min(4, args.warmup)))
            bad = [r.error for r in res if not r.success]
            if bad:
                raise SystemExit(f"{side}: warm-up failed: {bad[0]}\n{srv.tail()}")
        offset = args.warmup
        for conc, n in levels:
            batch = convs[offset:offset + n]
            offset += n
            res, dur = run_async(run_level(url, [payload(side, model, c, args.output_tokens) for c in batch],
                                           conc))
            row = {"server": side, "weights": weights, "kv": kv, "concurrency": conc, "requests": n,
                   **summarize(res, dur)}
            lengths = row["output_tokens_per_request"]
            row["fixed_length"] = lengths == [args.output_tokens]
            rows.append(row)
            print(f"  {side} {weights} (KV {kv}) c={conc:<3} {row['completed']}/{n} ok  "
                  f"{row['output_throughput']:8.1f} tok/s  "
                  f"TTFT med {row['median_ttft_ms']:7.1f} ms  TPOT med {row['median_tpot_ms']:6.2f} ms  "
                  f"ITL med {row['median_itl_ms']:6.2f} ms  lengths {lengths}", flush=True)
            if row["errors"]:
                print(f"    errors: {row['errors']}", flush=True)
        rss = srv.peak_rss_mb()
        for row in rows:
            row["server_peak_rss_mb"] = rss
        print(f"  {side}: peak resident memory {rss:,.0f} MiB" if rss else f"  {side}: peak memory unknown", flush=True)
    return rows


# ---- report ---------------------------------------------------------------------------------------

def table(results: list[dict]) -> str:
    head = (f"{'model':<9} {'weights':<8} {'server':<12} {'conc':>4} {'ok':>7} {'req/s':>6} {'out tok/s':>9} "
            f"{'TTFT mean/med/p99 ms':>22} {'TPOT mean/med/p99 ms':>21} {'ITL mean/med/p99 ms':>21}")
    lines = [head, "-" * len(head)]
    def trio(r: dict, k: str) -> str:
        return f"{r[f'mean_{k}_ms']:.1f}/{r[f'median_{k}_ms']:.1f}/{r[f'p99_{k}_ms']:.1f}"

    for r in results:
        lines.append(f"{r['model']:<9} {r['weights']:<8} {r['server']:<12} {r['concurrency']:>4} "
                     f"{str(r['completed']) + '/' + str(r['requests']):>7} {r['request_throughput']:>6.2f} "
                     f"{r['output_throughput']:>9.1f} {trio(r, 'ttft'):>22} {trio(r, 'tpot'):>21} "
                     f"{trio(r, 'itl'):>21}")
    return "\n".join(lines)


def markdown(results: list[dict], rat: list[dict]) -> str:
    """The table for docs/benchmarks.md, straight from the measured rows."""
    ratio = {(r["model"], r["weights"], r["concurrency"]): r.get("ours_over_peer") for r in rat}
    lines = ["| model | weights | KV cache | server | conc. | ok | req/s | output tok/s | ours / peer "
             "| TTFT median / p99 ms | TPOT median / p99 ms | ITL median / p99 ms |", "|" + "---|" * 12]
    for r in results:
        x = ratio.get((r["model"], r["weights"], r["concurrency"])) if r["server"] == OURS else None
        lines.append(f"| {r['model']} | {r['weights']} | {r.get('kv', r['weights'])} | {r['server']} "
                     f"| {r['concurrency']} "
                     f"| {r['completed']}/{r['requests']} "
                     f"| {r['request_throughput']:.2f} | {r['output_throughput']:.1f} | "
                     f"{f'{x:.2f}x' if x else ''} | {r['median_ttft_ms']:.0f} / {r['p99_ttft_ms']:.0f} "
                     f"| {r['median_tpot_ms']:.1f} / {r['p99_tpot_ms']:.1f} "
                     f"| {r['median_itl_ms']:.1f} / {r['p99_itl_ms']:.1f} |")
    return "\n".join(lines)


def ratios(results: list[dict]) -> list[dict]:
    """Per model, weights and level: ours over the peer's output throughput, and each server's output
    throughput over its own at the lowest level measured (the scaling continuous batching buys)."""
    tput = {((r["model"], r["weights"]), r["server"], r["concurrency"]): r["output_throughput"] for r in results}
    out = []
    for mw, conc in dict.fromkeys(((r["model"], r["weights"]), r["concurrency"]) for r in results):
        item: dict = {"model": mw[0], "weights": mw[1], "concurrency": conc}
        if tput.get((mw, PEER, conc)) and (mw, OURS, conc) in tput:
            item["ours_over_peer"] = tput[(mw, OURS, conc)] / tput[(mw, PEER, conc)]
        for side in (OURS, PEER):
            levels = sorted(c for (m, s, c) in tput if m == mw and s == side)
            if levels and (mw, side, conc) in tput and tput[(mw, side, levels[0])] > 0:
                item[f"{side}_over_own_c{levels[0]}"] = tput[(mw, side, conc)] / tput[(mw, side, levels[0])]
        out.append(item)
    return out


def concurrency_axes(axes, results: list[dict]) -> None:
    """Concurrency on a log-2 x axis with the measured levels as ticks, a grid and a legend."""
    import matplotlib

    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["concurrency"] for r in results}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("concurrent requests")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)


def plot(results: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {OURS: "tab:blue", PEER: "tab:orange"}
    panels = list(dict.fromkeys((r["model"], r["weights"]) for r in results))
    fig, axes = plt.subplots(2, len(panels), figsize=(max(4.3 * len(panels), 7.0), 7.5), squeeze=False)
    for j, (model, weights) in enumerate(panels):
        top, bottom = axes[0][j], axes[1][j]
        for side in (OURS, PEER):
            rows = sorted((r for r in results if (r["model"], r["weights"], r["server"]) == (model, weights, side)),
                          key=lambda r: r["concurrency"])
            if not rows:
                continue
            c = [r["concurrency"] for r in rows]
            kv = rows[0].get("kv", weights)
            top.plot(c, [r["output_throughput"] for r in rows], "o-", color=colors[side],
                     label=side if kv == weights else f"{side}, KV cache {kv}")
            bottom.plot(c, [r["median_tpot_ms"] for r in rows], "o-", color=colors[side], label=f"{side} TPOT")
            bottom.plot(c, [r["median_ttft_ms"] for r in rows], "s--", color=colors[side], alpha=0.5,
                        label=f"{side} TTFT")
        if model == "ref8.7m" and weights == "float32" and meta.get("device", "cpu") == "cpu":  # the issue's: CPU
            for (label, figs), mark in zip(ISSUE_PEER.items(), ("x:", "*"), strict=True):
                ks = sorted(figs)
                top.plot(ks, [figs[k] for k in ks], mark, color="grey", label=f"issue's figure: {label}")
        params = meta["params"].get(model, {})
        top.set_title(f"{model} ({params.get(OURS, params.get(PEER, 0)) / 1e6:.1f}M params), {weights}", fontsize=9)
        top.set_ylabel("output tokens/s")
        bottom.set_ylabel("median TPOT and TTFT, ms (log)")
        bottom.set_yscale("log")
        concurrency_axes((top, bottom), results)
    load = meta.get("loadavg_start", [0.0])[0]
    cpu = meta.get("cpu")
    where = meta["machine"]
    if cpu:
        where = (f"{cpu['cpu']} ({cpu['cores']} cores);\n C step {cpu['c_step'].split(' (')[0]}, torch "
                 f"{cpu['torch_isa']}, float32 matmul peak {cpu['matmul_peak'] / 1e12:.2f} TFLOP/s")
    fig.suptitle(f"{meta['output_tokens']} output tokens per request; {where};\n torch {meta['torch']}; "
                 f"load average {load:.1f} at start; {meta['date'][:10]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot -> {path}")


def main() -> None:
    all_shapes = shapes()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(all_shapes), choices=list(all_shapes))
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--requests", nargs="+", type=int, default=None,
                   help="requests per level: one number for all, or one per --concurrency level "
                        "(default: 16/32/64, and 4/16/32 for 100m)")
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--device", default="cpu", help="where both servers run the model: cpu (default) or cuda")
    p.add_argument("--warmup", type=int, default=4, help="warm-up requests per server, not measured")
    p.add_argument("--weights", nargs="+", default=["float32"], choices=["float32", "bfloat16"],
                   help="weight precisions to measure, each on both sides (ours: --weights, the peer: --dtype)")
    p.add_argument("--kv-dtype", choices=["float32", "bfloat16"], default=None,
                   help="our KV cache's type (default: as --weights); the peer keeps its model's type")
    p.add_argument("--ours-args", nargs="+", default=[], metavar="ARG",
                   help="more arguments for `colossus serve`, e.g. --ours-args=--kernel-threads=1")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--skip-ours", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both servers (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="JSON file for every figure")
    p.add_argument("--plot", type=Path, default=None, help="PNG plot")
    p.add_argument("--keep", type=Path, default=None, help="keep model dirs and server logs here")
    args = p.parse_args()
    # stopped with SIGTERM (timeout, kill): unwind, so that the servers' context managers stop them too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.requests and len(args.requests) not in (1, len(args.concurrency)):
        p.error("--requests takes one number, or one per --concurrency level")
    sides = [s for s, skip in ((OURS, args.skip_ours), (PEER, args.skip_peer)) if not skip]
    if not sides:
        p.error("nothing to measure: both sides skipped")

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    chosen = [all_shapes[m] for m in args.models]
    toks, chats = world_tokenizers({s.cfg.vocab_size for s in chosen}, work)
    meta = {
        "command": "python benchmarks/serve.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU" if not torch.cuda.is_available()
        else f"{platform.machine()}, {os.cpu_count()} CPU cores, {torch.cuda.get_device_name()}",
        "torch": torch.__version__, "python": platform.python_version(), "device": args.device,
        "output_tokens": args.output_tokens, "threads": args.threads, "params": {}, "shapes": {}, "notes": {},
        "loadavg_start": os.getloadavg(),  # other jobs on the machine show here
    }
    if args.device == "cpu":  # which CPU, which vector code on each side, and its peak, above every table
        meta["cpu"] = cpu_facts(args.threads or os.cpu_count() or 1)
        print(describe(meta["cpu"]), flush=True)
    try:
        import transformers
        meta["transformers"] = transformers.__version__
    except ImportError:
        if PEER in sides:
            raise SystemExit("transformers is not installed: pip install -e '.[bench]', or pass --skip-peer") from None

    results = []
    for shape in chosen:
        levels = [(c, (args.requests[i] if len(args.requests) > 1 else args.requests[0]) if args.requests
                   else shape.requests.get(c, 16)) for i, c in enumerate(args.concurrency)]
        tok = Tokenizer.load(toks[shape.cfg.vocab_size])
        need = args.warmup + sum(n for _, n in levels)
        convs = pick_conversations(chats, tok, need, shape.cfg.seq_len - args.output_tokens, args.seed)
        meta["shapes"][shape.name] = shape.cfg.to_dict()
        meta["notes"][shape.name] = shape.note
        meta["params"][shape.name] = {}
        print(f"\n== {shape.name}: {shape.cfg.n_layer} layers, width {shape.cfg.d_model}, {shape.cfg.n_head} heads, "
              f"vocab {shape.cfg.vocab_size}, swiglu {shape.cfg.mlp_hidden}; levels {levels}", flush=True)
        dirs = {}
        for side in sides:
            dirs[side] = d = work / f"{shape.name}-{side}"
            n_params = (save_ours if side == OURS else save_peer)(shape, toks[shape.cfg.vocab_size], d)
            meta["params"][shape.name][side] = n_params
            print(f"  {side}: {n_params / 1e6:.2f}M parameters -> {d}", flush=True)
        for weights in args.weights:
            for side in sides:
                rows = bench_server(side, dirs[side], convs, levels, args,
                                    work / f"{shape.name}-{side}-{weights}.log", weights)
                results += [{"model": shape.name, **r} for r in rows]
    meta["wall_s"] = time.perf_counter() - t_start
    meta["loadavg_end"] = os.getloadavg()

    print("\n" + (describe(meta["cpu"]) + "\n" if "cpu" in meta else "") + table(results))
    rat = ratios(results)
    for r in rat:
        print("  " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    print("\n" + (describe(meta["cpu"]) + "\n\n" if "cpu" in meta else "") + markdown(results, rat) + "\n")
    bad = [f"{r['model']}/{r['weights']}/{r['server']}/c{r['concurrency']}" for r in results if not r["fixed_length"]]
    if bad:
        print(f"WARNING: output lengths differ from {args.output_tokens} in {bad}")
    print(f"total wall time {meta['wall_s']:.0f}s; load average at start {meta['loadavg_start']}, "
          f"at end {meta['loadavg_end']}; model dirs and logs in {work}")
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "results": results, "ratios": rat,
                                        "issue_figures_ref8.7m": ISSUE_PEER}, indent=1) + "\n")
        print(f"results -> {args.out}")
    if args.plot:
        plot(results, meta, args.plot)


if __name__ == "__main__":
    main()
