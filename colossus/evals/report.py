"""The evaluation report of a trained model: the truth scorecard, bits-per-byte and in-context copying, written
as report.json, a readable report.md and a loss-curve plot (loss.png).

    colossus eval --model runs/latest          prints the report for the run's model

With a world that has a feed (feed_eval.jsonl), the report adds the feed's scorecard (colossus.evals.feed_eval):
the model as the assistant, searching a feed of the evaluation's own into which the held-out posts are ingested
only then. `ece` pools everything answered, the feed's answers included."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from colossus.data.tokenizer import Tokenizer
from colossus.errors import ColossusError
from colossus.evals.bpb import bits_per_byte
from colossus.evals.copying import copy_losses, name_copy_rate
from colossus.evals.feed_eval import feed_answers
from colossus.evals.feed_grading import answered, score_feed
from colossus.evals.truth import answered_items, ece_of, truth_report
from colossus.model import load_chat_model, resolve_model
from colossus.train.device import machine, pick_device
from colossus.train.progress import read_metrics
from colossus.world.build import read_jsonl, write_jsonl

RATES = [("known_accuracy", "known facts answered correctly", "higher"),
         ("known_abstain_rate", "known facts declined", "lower"),
         ("abstain_rate", "unknown names: said 'I don't know'", "higher"),
         ("hallucination_rate", "unknown names: invented an answer", "lower"),
         ("recombined_abstain_rate", "recombined names: said 'I don't know'", "higher"),
         ("false_premise_rate", "false premises corrected", "higher"),
         ("true_premise_rate", "true premises accepted and answered", "higher"),
         ("false_premise_answered_rate", "corrections that answer the question too", "higher"),
         ("known_ece", "calibration error on known facts", "lower"),
         ("ece", "calibration error on everything answered", "lower"),
         ("feed_accuracy", "feed: right from a cited post", "higher"),
         ("feed_abstain_rate", "feed: nothing matches, and says so", "higher"),
         ("citation_precision", "feed: citations supporting their sentence", "higher"),
         ("factcheck_accuracy", "feed: fact-checks labelled right", "higher"),
         ("injection_resistance", "feed: answers unmoved by injected posts", "higher"),
         ("name_copy_rate", "unknown names: the name written as asked", "higher"),
         ("copy_loss_second", "copy loss on a string's second copy", "lower"),
         ("bpb", "bits per byte, held-out documents", "lower")]
COPY_STRINGS = 128  # random strings written twice for the copy losses (colossus.evals.copying)


def find_world(model_dir: Path, world: str | Path | None) -> Path:
    if world is not None:
        w = Path(world)
        if not (w / "world.json").exists():
            raise ColossusError(f"{w} is not a world directory (no world.json): write one with `colossus data world`")
        return w
    for cand in (model_dir / "world", model_dir.parent / "world"):
        if (cand / "world.json").exists():
            return cand
    raise ColossusError(f"no world found beside {model_dir}: pass --world DIR")


def evaluate(model_path: str | Path, world: str | Path | None = None, split: str = "test",
             device: str = "cpu") -> tuple[dict, list[dict]]:
    """(report, graded items) for a model (our directory, a Hugging Face folder or a GGUF file: each with its own
    tokenizer and chat template) on a world's held-out split."""
    model_dir, _ = resolve_model(model_path)
    world_dir = find_world(model_dir if model_dir.is_dir() else model_dir.parent, world)
    model, tok = load_chat_model(model_dir, device)
    if tok.vocab_size > model.cfg.vocab_size:
        raise ColossusError(f"tokenizer in {model_dir} has {tok.vocab_size} tokens, more than the model's "
                            f"{model.cfg.vocab_size}")
    if split not in ("val", "test"):
        raise ColossusError(f"--split must be val or test, not {split!r}")
    items = read_jsonl(world_dir / f"eval_{split}.jsonl")
    t0 = time.time()
    with torch.inference_mode():
        truth = truth_report(model, tok, items, device=device)
        held = [d["text"] for d in read_jsonl(world_dir / "heldout_documents.jsonl")]
        bpb = bits_per_byte(model, tok, held, device=device)
        length = min(32, model.cfg.seq_len // 2)
        copy = copy_losses(model, tok, n=COPY_STRINGS, length=length)
    graded = truth.pop("items")
    feed = feed_scorecard(model, tok, world_dir, device)
    if feed is not None:
        feed_graded = feed.pop("feed_items")
        truth["ece"] = ece_of(answered_items(graded) + answered(feed_graded))
        truth |= feed
        graded = graded + feed_graded
    training = {}
    if model_dir.is_dir() and (model_dir / "training.json").exists():
        training = json.loads((model_dir / "training.json").read_text())
    trained_on = (training.get("pretrain") or training).get("machine")
    report = {**truth, "name_copy_rate": name_copy_rate(graded), "copy_loss_first": copy["first"],
              "copy_loss_second": copy["second"], "copy_strings": {"n": COPY_STRINGS, "length": length},
              "bpb": round(bpb, 4), "params": model.num_params(),
              "train_seconds": training.get("train_seconds"),
              "tokens_per_second": training.get("tokens_per_second"),
              "machine": trained_on or machine(pick_device(device.partition(":")[0], "fp32")),
              "split": split, "model": str(model_dir), "world": str(world_dir),
              "eval_seconds": round(time.time() - t0, 2), "training": training}
    return report, graded


def feed_scorecard(model, tok: Tokenizer, world_dir: Path, device: str) -> dict | None:
    """The feed's rates, counts and graded items, or None for a world without a feed."""
    if not (world_dir / "feed_eval.jsonl").exists():
        return None
    items = read_jsonl(world_dir / "feed_eval.jsonl")
    posts = read_jsonl(world_dir / "feed_train_posts.jsonl") + read_jsonl(world_dir / "feed_eval_posts.jsonl")
    with tempfile.TemporaryDirectory(prefix="colossus-feed-eval-") as tmp:
        return score_feed(items, feed_answers(model, tok, items, posts, Path(tmp), device=device))


def plot_loss(run_dir: Path, out: Path) -> bool:
    """Loss against step for the premise drill, pretraining and fine-tuning (with validation loss where
    measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [(s, read_metrics(run_dir / s / "metrics.jsonl")) for s in ("drill", "pretrain", "sft")]
    stages = [(s, m) for s, m in stages if m]
    if not stages:
        return False
    fig, axes = plt.subplots(1, len(stages), figsize=(5.5 * len(stages), 3.8), squeeze=False)
    for ax, (name, rows) in zip(axes[0], stages, strict=True):
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        ax.plot(*zip(*train, strict=True), label="train loss", color="#1f77b4")
        if val:
            ax.plot(*zip(*val, strict=True), "o-", label="held-out loss", color="#d62728", markersize=3)
        ax.set_title({"drill": "premise drill", "pretrain": "pretraining", "sft": "chat fine-tuning"}[name])
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def describe_machine(m: dict) -> str:
    """'Intel Xeon (AVX-512 + AMX), 2 cores, 2 torch threads, cpu float32, matmul peak 0.38 TFLOP/s (measured)'"""
    return (f"{m['cpu']} ({m['vector_isa']}), {m['cores']} cores, {m['torch_threads']} torch threads, "
            f"{m['device']} {m['dtype']}, matmul peak {m['matmul_peak_tflops']:.2f} TFLOP/s ({m['peak_source']})")


def copy_sentence(r: dict) -> str:
    """What the copy losses say, in words."""
    c = r.get("copy_strings") or {}
    return (f"{c.get('n', '?')} random strings of {c.get('length', '?')} tokens, each written twice: "
            f"{r['copy_loss_first']:.2f} nats/token on the first copy, {r['copy_loss_second']:.2f} on the second "
            f"(a model that copies from its context scores the second far lower)")


def by_label(r: dict) -> str:
    """'SUPPORTS 0.900, REFUTES 0.800, NOT ENOUGH INFO 0.750'"""
    return ", ".join(f"{label} {v:.3f}" for label, v in r["factcheck_accuracy_by_label"].items() if v is not None)


def format_report(r: dict) -> str:
    lines = [f"Truth report ({r['split']} split, {r['params'] / 1e6:.2f}M parameters)"]
    for key, label, better in RATES:
        v = r.get(key)
        if v is not None:
            lines.append(f"  {label:<40} {v:>7.3f}   ({better} is better)")
    if r.get("factcheck_accuracy_by_label"):
        lines.append(f"  fact-checks by label: {by_label(r)}")
    if r.get("copy_loss_first") is not None:
        lines.append(f"  copying: {copy_sentence(r)}")
    if r.get("train_seconds") is not None:
        lines.append(f"  training: {r['train_seconds']:.0f} s at {r['tokens_per_second']:,.0f} tokens/s")
    if r.get("machine"):
        lines.append(f"  machine: {describe_machine(r['machine'])}")
    c = r.get("counts", {}) | r.get("feed_counts", {})
    lines.append("  questions: " + ", ".join(f"{k} {v['total']}" for k, v in c.items()))
    return "\n".join(lines)


def cell(text: str) -> str:
    """Text fit for a cell of a Markdown table."""
    return text.replace("|", "/").replace("\n", " ")


def report_markdown(r: dict, graded: list[dict], has_plot: bool) -> str:
    md = [f"# Truth report: `{r['model']}`", "",
          f"Held-out **{r['split']}** split of `{r['world']}` (never trained on). "
          f"{r['params']:,} parameters.", "", "| measure | value | better |", "|---|---:|---|"]
    for key, label, better in RATES:
        if r.get(key) is not None:
            md.append(f"| {label} (`{key}`) | {r[key]:.3f} | {better} |")
    if r.get("factcheck_accuracy_by_label"):
        md += ["", f"Fact-checks by label: {by_label(r)}."]
    if r.get("copy_loss_first") is not None:
        md += ["", f"Copying: {copy_sentence(r)}."]
    if r.get("train_seconds") is not None:
        md += ["", f"Training took {r['train_seconds']:.0f} s at {r['tokens_per_second']:,.0f} tokens/s."]
    if r.get("machine"):
        md += ["", f"Machine: {describe_machine(r['machine'])}."]
    if has_plot:
        md += ["", "![loss curves](loss.png)"]
    md += ["", "## Examples", ""]
    kinds = dict.fromkeys(["known", "unknown", "recombined", "false_premise", "true_premise"]
                          + [g["kind"] for g in graded])
    for kind in kinds:
        rows = [g for g in graded if g["kind"] == kind][:4]
        if rows:
            md += [f"### {kind}", "", "| question | reply | grade |", "|---|---|---|"]
            md += [f"| {cell(g['question'])} | {cell(g['reply'])} | {g['grade']} |" for g in rows]
            md.append("")
    return "\n".join(md) + "\n"


def write_report(out_dir: Path, report: dict, graded: list[dict], run_dir: Path | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    has_plot = plot_loss(run_dir, out_dir / "loss.png") if run_dir is not None else False
    tmp = out_dir / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(out_dir / "report.json")
    write_jsonl(out_dir / "eval_items.jsonl", graded)
    (out_dir / "report.md").write_text(report_markdown(report, graded, has_plot))
