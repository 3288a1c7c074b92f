"""The one entry point: `colossus COMMAND`.

    colossus speedrun --preset cpu           the whole chain on the embedded default
    colossus data world --out DIR            write the synthetic world as jsonl
    colossus data tokenizer / data shards    tokenizer and token shards from a corpus
    colossus train / sft                     one training stage
    colossus eval --model DIR                the truth report of a model
    colossus chat --model DIR                talk to a model in the terminal
    colossus chat --url http://HOST:PORT     ... or to a running `colossus serve`
    colossus serve --model DIR               an OpenAI-compatible API and the web chat
    colossus export --model DIR --format hf|gguf --out PATH   our model as a Hugging Face folder or a GGUF file
    colossus plan --model llama3-405b ...    plan a training run on 1,000 to 1,000,000 GPUs

A problem the user can fix is reported in one line on stderr with exit code 2; no traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from colossus.errors import ColossusError


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message: str):
        self.exit(2, f"colossus: error: {message} (see `{self.prog} --help`)\n")


def add_config_args(p: argparse.ArgumentParser, default_preset: str | None = "cpu") -> None:
    p.add_argument("--preset", default=default_preset,
                   help="named configuration: tiny, cpu, feed (cpu with the world's feed) or gpu")
    p.add_argument("--config", type=Path, help="TOML file overriding preset fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override one field, e.g. --set pretrain.lr=0.004 (repeatable)")


def cmd_speedrun(a) -> int:
    from colossus.config import load_config
    from colossus.speedrun import run_speedrun

    cfg = None if a.resume else load_config(a.preset, a.config, a.overrides)
    if a.resume and (a.config or a.overrides):
        raise ColossusError("--resume continues a run with its saved config; --config/--set cannot change it")
    chat = False if a.no_chat else None
    run_speedrun(cfg, runs=a.runs, name=a.name, resume=a.resume, chat=chat)
    return 0


def cmd_data_world(a) -> int:
    from colossus.world.build import WorldConfig, generate

    cfg = WorldConfig(seed=a.seed, entities=a.entities, docs_per_entity=a.docs_per_entity)
    generate(a.out, cfg)
    return 0


def cmd_data_tokenizer(a) -> int:
    from colossus.data.corpus import read_corpus
    from colossus.data.prepare import train_tokenizer

    if a.vocab_size < 300:
        raise ColossusError("--vocab-size must be at least 300 (256 bytes + special tokens + merges)")
    train_tokenizer(read_corpus(a.corpus, a.text_field), a.out, a.vocab_size)
    return 0


def cmd_data_shards(a) -> int:
    from colossus.data.corpus import read_chats, read_corpus
    from colossus.data.prepare import packed_shards, pretrain_shards
    from colossus.model import load_tokenizer

    if a.corpus is None and a.chats is None:
        raise ColossusError("data shards needs --corpus (documents), --chats (conversations), or both")
    tok = load_tokenizer(a.tokenizer)
    if a.chats is None:
        pretrain_shards(read_corpus(a.corpus, a.text_field), tok, a.out)
        return 0
    if a.seq_len < 8:
        raise ColossusError("--seq-len must be at least 8")
    docs = [] if a.corpus is None else list(read_corpus(a.corpus, a.text_field))
    packed_shards(docs, read_chats(a.chats), tok, a.out, a.seq_len, a.seed)
    return 0


def train_stage(a, stage: str) -> int:
    from colossus.config import load_config
    from colossus.model import is_imported, load_model, load_tokenizer
    from colossus.model.config import ModelConfig
    from colossus.model.io import CONFIG, WEIGHTS, resolve_model_dir
    from colossus.speedrun import model_config
    from colossus.train.trainer import train

    cfg = load_config(a.preset, a.config, a.overrides)
    imported = a.init is not None and is_imported(a.init)
    if imported and a.tokenizer is not None:
        raise ColossusError("--tokenizer: a GGUF file or Hugging Face folder brings its own tokenizer and chat "
                            "template; leave --tokenizer out (and pack the shards with --tokenizer MODEL)")
    if not imported and a.tokenizer is None:
        raise ColossusError("--tokenizer is needed (the tokenizer.json the shards were packed with)")
    tok = load_tokenizer(a.init if imported else a.tokenizer)
    if a.init is None:
        mcfg, init = model_config(cfg, tok), None
    elif imported:  # dequantized to float32, the dtype training keeps its weights in
        model = load_model(a.init, dtype="float32")
        mcfg, init = model.cfg, model.state_dict()
    else:  # the model keeps its own shape: the preset's [model] table is for a fresh one
        init_dir = resolve_model_dir(a.init)
        init, mcfg = init_dir / WEIGHTS, ModelConfig.load(init_dir / CONFIG)
    if tok.vocab_size > mcfg.vocab_size:
        raise ColossusError(f"--tokenizer has {tok.vocab_size} tokens, more than the --init model's "
                            f"{mcfg.vocab_size}: use the tokenizer the model was trained with")
    train(a.out, mcfg, getattr(cfg, stage), a.data, label=stage, init_from=init,
          resume=a.resume, val_data=a.val_data)
    model_dir = final_model(a.out, tok, None if imported else a.tokenizer)
    print(f"{stage}: model written to {model_dir} (colossus chat --model {a.out})")
    return 0


def final_model(stage_dir: Path, tok, tokenizer_path: Path | None) -> Path:
    """STAGE/model: the newest checkpoint's weights and config with the tokenizer (ours, or an imported model's
    with its chat template), a model directory that chat, serve and eval take."""
    import shutil

    from colossus.model.io import CONFIG, TOKENIZER, WEIGHTS
    from colossus.train.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(stage_dir)
    out = stage_dir / "model"
    tmp = stage_dir / "model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in (CONFIG, WEIGHTS):
        shutil.copyfile(ckpt / name, tmp / name)
    if tokenizer_path is None:
        tok.save(tmp)
    else:
        shutil.copyfile(tokenizer_path if Path(tokenizer_path).is_file() else Path(tokenizer_path) / TOKENIZER,
                        tmp / TOKENIZER)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def cmd_eval(a) -> int:
    from colossus.evals.report import evaluate, format_report, write_report
    from colossus.train.device import check_device

    report, graded = evaluate(a.model, a.world, a.split, check_device(a.device))
    print(format_report(report))
    if a.out is not None:
        write_report(a.out, report, graded)
        print(f"written to {a.out}/report.json and report.md")
    return 0


def cmd_chat(a) -> int:
    from colossus.terminal_chat import LocalBackend, RemoteBackend, chat_loop

    if a.temperature < 0:
        raise ColossusError("--temperature must be >= 0")
    if (a.model is None) == (a.url is None):
        raise ColossusError("give either --model DIR (run the model here) or --url URL (a running server)")
    if a.url is not None:
        import os

        if a.feed is not None:
            raise ColossusError("--feed goes with --model: the server at --url searches its own feed")
        backend = RemoteBackend(a.url, api_key=a.api_key or os.environ.get("COLOSSUS_API_KEY"), search=a.search)
        name = f"{backend.connect()} at {backend.url}"
    else:
        if a.api_key is not None:
            raise ColossusError("--api-key goes with --url")
        from colossus.train.device import check_device

        feed = None
        if a.feed is not None:
            from colossus.feed.feed import Feed

            if not (a.feed.expanduser() / "feed.db").exists():
                raise ColossusError(f"no feed at {a.feed} (no feed.db): add posts with `colossus feed add`")
            feed = Feed(a.feed)
        backend = LocalBackend(a.model, check_device(a.device), feed=feed, search=a.search or "auto")
        name = str(a.model) + (f", searching the feed at {a.feed}" if feed is not None else "")
    print(f"Chatting with {name}. /help for commands, /exit to leave.")
    try:
        chat_loop(backend, system=a.system, temperature=a.temperature)
    finally:
        backend.close()
    return 0


def cmd_serve(a) -> int:
    import os

    import uvicorn

    from colossus.serve.app import ServeConfig, create_app
    from colossus.serve.auth import keys_from, parse_rate

    if not 0 < a.port < 65536:
        raise ColossusError(f"--port must be in 1..65535, not {a.port}")
    if a.max_batch < 1 or a.max_body < 1:
        raise ColossusError("--max-batch and --max-body must be >= 1")
    if a.threads is not None and a.threads < 1:
        raise ColossusError(f"--threads must be >= 1, not {a.threads}")
    if a.kernel_threads is not None and a.kernel_threads < 1:
        raise ColossusError(f"--kernel-threads must be >= 1, not {a.kernel_threads}")
    if a.max_model_len is not None and a.max_model_len < 1:
        raise ColossusError(f"--max-model-len must be >= 1, not {a.max_model_len}")
    import torch

    from colossus.train.device import check_device

    check_device(a.device)

    # torch's own threads. With PyTorch ops (--kernel torch, or a GPU) one core is left to the HTTP event
    # loop: on 2 cores, 2 torch threads fighting it were 3-5x slower. With the C step (the default on CPU)
    # torch only samples, and a second OpenMP pool spinning beside the C step's slowed both by up to 4x:
    # one thread. An explicit OMP_NUM_THREADS is respected, as torch itself does.
    cores = os.cpu_count() or 2
    default = 1 if a.kernel != "torch" and a.device == "cpu" else max(1, cores - 1)
    if "OMP_NUM_THREADS" in os.environ:
        default = torch.get_num_threads()
    torch.set_num_threads(a.threads or default)
    keys = keys_from(a.api_key, os.environ.get("COLOSSUS_API_KEY"))
    cfg = ServeConfig(model=a.model, api_keys=keys, db=a.db, feed=a.feed, max_batch=a.max_batch,
                      rate_limit=parse_rate(a.rate_limit), max_body=a.max_body, device=a.device,
                      weights=a.weights, kernel=a.kernel, kernel_threads=a.kernel_threads, kv_dtype=a.kv_dtype,
                      cuda_graphs=not a.eager, handle=a.handle, max_model_len=a.max_model_len)
    # the server's own lines (model loaded, KV cache, which forward step) beside uvicorn's, in its format
    ours = logging.getLogger("colossus")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
    app = create_app(cfg)
    print(f"Serving {a.model} on http://{a.host}:{a.port} ({len(keys)} API key(s)"
          f"{'' if keys else ': open to anyone who can reach it'}; conversations in {cfg.db}; "
          f"{torch.get_num_threads()} torch thread(s))", flush=True)
    uvicorn.run(app, host=a.host, port=a.port, log_level="info", timeout_graceful_shutdown=5)
    return 0


def cmd_export(a) -> int:
    if a.format == "hf":
        import json

        from colossus.model.export_hf import export_hf

        if a.dtype == "q8_0":
            raise ColossusError("--dtype q8_0 goes with --format gguf (a Hugging Face folder takes f32, bf16 or f16)")
        out = export_hf(a.model, a.out, a.dtype)
        kind = f"model_type {json.loads((out / 'config.json').read_text())['model_type']}, {a.dtype} weights"
    else:
        from colossus.model.export_gguf import export_gguf
        from colossus.model.gguf_file import GGUFFile

        out = export_gguf(a.model, a.out, a.dtype)
        kind = f"architecture {GGUFFile(out).architecture}, {a.dtype} matrices"
    print(f"wrote {out} ({kind})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="colossus", description="Train and serve a truth-seeking assistant.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)

    s = sub.add_parser("speedrun", help="world -> tokenizer -> pretrain -> fine-tune -> report -> chat")
    add_config_args(s)
    s.add_argument("--runs", type=Path, default=Path("runs"), help="where runs are kept (default: runs)")
    s.add_argument("--name", help="run name (default: PRESET-DATE-TIME)")
    s.add_argument("--resume", action="store_true", help="continue runs/latest (or --name) where it stopped")
    s.add_argument("--no-chat", action="store_true", help="exit after the report instead of opening the chat")
    s.set_defaults(func=cmd_speedrun)

    d = sub.add_parser("data", help="build the data: world, tokenizer, shards")
    dsub = d.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    w = dsub.add_parser("world", help="write the synthetic world as jsonl")
    w.add_argument("--out", type=Path, required=True)
    w.add_argument("--entities", type=int, default=1000)
    w.add_argument("--docs-per-entity", type=int, default=8)
    w.add_argument("--seed", type=int, default=1337)
    w.set_defaults(func=cmd_data_world)
    t = dsub.add_parser("tokenizer", help="train a byte-level BPE tokenizer on a corpus")
    t.add_argument("--corpus", type=Path, required=True, help=".txt / .jsonl / .parquet file or directory")
    t.add_argument("--out", type=Path, required=True, help="tokenizer.json to write")
    t.add_argument("--vocab-size", type=int, default=8192)
    t.add_argument("--text-field", default="text", help="jsonl field / parquet column holding the text")
    t.set_defaults(func=cmd_data_tokenizer)
    sh = dsub.add_parser("shards", help="tokenize a corpus into token shards, or pack conversations for sft")
    sh.add_argument("--corpus", type=Path, help=".txt / .jsonl / .parquet file or directory of documents")
    sh.add_argument("--chats", type=Path, help="a .jsonl of conversations ({\"messages\": [...]} per line): packed "
                    "rows for `colossus sft`, the loss on the assistant's tokens (--corpus documents mixed in)")
    sh.add_argument("--tokenizer", type=Path, required=True,
                    help="our tokenizer.json, or a GGUF file or Hugging Face folder whose tokenizer and chat template "
                         "render the conversations")
    sh.add_argument("--out", type=Path, required=True)
    sh.add_argument("--text-field", default="text")
    sh.add_argument("--seq-len", type=int, default=128, help="with --chats: the model's context (rows are one longer)")
    sh.add_argument("--seed", type=int, default=1337, help="with --chats: the order of the packed rows")
    sh.set_defaults(func=cmd_data_shards)

    for stage, helptext in (("train", "pretrain a model on token shards"),
                            ("sft", "fine-tune a model on packed chat shards")):
        tr = sub.add_parser(stage, help=helptext)
        add_config_args(tr)
        tr.add_argument("--data", type=Path, required=True, help="token shard directory")
        tr.add_argument("--tokenizer", type=Path,
                        help="the shards' tokenizer.json (not with an --init GGUF file or Hugging Face folder)")
        tr.add_argument("--out", type=Path, required=True, help="stage directory (checkpoints, metrics)")
        tr.add_argument("--init", type=Path, help="model directory, checkpoint, GGUF file or Hugging Face folder to "
                        "start from")
        tr.add_argument("--val-data", type=Path, help="shards for a held-out loss")
        tr.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
        tr.set_defaults(func=lambda a, s=("pretrain" if stage == "train" else "sft"): train_stage(a, s))

    e = sub.add_parser("eval", help="the truth report of a model on a world's held-out split")
    e.add_argument("--model", type=Path, required=True,
                   help="model directory, a run directory, a Hugging Face folder or a GGUF file")
    e.add_argument("--world", type=Path, help="world directory (default: the one beside the model)")
    e.add_argument("--split", default="test", help="test (default) or val")
    e.add_argument("--out", type=Path, help="also write report.json / report.md here")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("chat", help="chat with a model in the terminal")
    c.add_argument("--model", type=Path, help="model directory, a run directory, a Hugging Face folder or a GGUF file")
    c.add_argument("--url", help="a running `colossus serve`, e.g. http://127.0.0.1:8000 (instead of --model)")
    c.add_argument("--api-key", help="the server's API key (with --url; default: $COLOSSUS_API_KEY)")
    c.add_argument("--system", help="system prompt")
    c.add_argument("--temperature", type=float, default=0.7)
    c.add_argument("--device", default="cpu")
    c.add_argument("--feed", type=Path, help="with --model: the feed the assistant searches (default: none)")
    c.add_argument("--search", choices=("auto", "on", "off"),
                   help="search mode: auto (the model decides; the default), on (search with each question), off")
    c.set_defaults(func=cmd_chat)

    from colossus.feed.mentions import DEFAULT_HANDLE
    from colossus.feed.post import DEFAULT_FEED
    from colossus.serve.conversations import DEFAULT_DB

    sv = sub.add_parser("serve", help="serve a model: OpenAI-compatible API, web chat, metrics")
    sv.add_argument("--model", type=Path, required=True,
                    help="model directory, a run directory, a Hugging Face folder or a GGUF file")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--api-key", action="append", default=[], metavar="KEY",
                    help="accept this bearer key (repeatable; also $COLOSSUS_API_KEY, comma-separated)")
    sv.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"conversation database (default: {DEFAULT_DB})")
    sv.add_argument("--feed", type=Path, default=DEFAULT_FEED,
                    help=f"directory of the feed of posts, /v1/posts (default: {DEFAULT_FEED})")
    sv.add_argument("--handle", default=DEFAULT_HANDLE, metavar="NAME",
                    help=f"the assistant's handle on the feed: a post mentioning @NAME gets a reply in its thread "
                         f"(default: {DEFAULT_HANDLE})")
    sv.add_argument("--max-batch", type=int, default=32, help="requests decoded together (default: 32)")
    sv.add_argument("--max-model-len", type=int, metavar="TOKENS",
                    help="longest prompt plus answer (default: the model's context, shortened if the KV cache of "
                         "--max-batch requests would not fit in a quarter of the memory)")
    sv.add_argument("--rate-limit", metavar="N/min", help="requests a minute per API key (default: no limit)")
    sv.add_argument("--max-body", type=int, default=1 << 20, metavar="BYTES",
                    help="largest request body (default: 1 MiB)")
    sv.add_argument("--device", default="cpu", help="where the model runs: cpu (the default), cuda or cuda:N")
    sv.add_argument("--threads", type=int,
                    help="torch CPU threads (default: 1 beside the C step, else one fewer than the cores)")
    sv.add_argument("--weights", choices=("float32", "bfloat16"), default="float32",
                    help="matmul weights: float32 (as trained, the default) or bfloat16 (on CPU rounded: half the "
                         "bytes to read, up to about twice as fast decoding, arithmetic still float32; on a GPU the "
                         "whole model and its KV cache in bfloat16)")
    sv.add_argument("--kv-dtype", choices=("float32", "bfloat16"),
                    help="what the KV cache stores (default: as --weights): bfloat16 halves its memory and what "
                         "attention reads each step; attention still computes in float32")
    sv.add_argument("--kernel", choices=("auto", "c", "torch"), default="auto",
                    help="forward step: auto (on CPU, the C step or torch ops, whichever was timed faster for the "
                         "step's size on this machine: timed at the first start of a model shape, cached beside "
                         "the compiled kernel, logged), c (always the C step), or torch (always PyTorch ops)")
    sv.add_argument("--kernel-threads", type=int,
                    help="threads of the C forward step (default: the cores, up to 8; it runs with the GIL released)")
    sv.add_argument("--eager", action="store_true",
                    help="on a GPU, run each decode step op by op instead of replaying CUDA graphs captured at start")
    sv.set_defaults(func=cmd_serve)

    ex = sub.add_parser("export", help="write a model as a Hugging Face folder or a GGUF file (llama.cpp)")
    ex.add_argument("--model", type=Path, required=True,
                    help="our model directory or a run directory, or an imported GGUF file or Hugging Face folder")
    ex.add_argument("--format", choices=("hf", "gguf"), required=True,
                    help="hf: a folder for transformers (config.json, model.safetensors, tokenizer, chat template); "
                         "gguf: one file for llama.cpp and Ollama")
    ex.add_argument("--out", type=Path, required=True, help="the folder (hf) or the .gguf file to write")
    ex.add_argument("--dtype", choices=("f32", "bf16", "f16", "q8_0"), default="f32",
                    help="gguf: the matrices' type, f32, f16 or q8_0 (norms stay f32); hf: every weight's, f32, "
                         "bf16 or f16 (default: f32)")
    ex.set_defaults(func=cmd_export)

    from colossus.assistant.check_cli import add_parser as add_check_parser
    from colossus.feed.cli import add_parser as add_feed_parser
    from colossus.plan.cli import add_parser as add_plan_parser

    add_check_parser(*add_feed_parser(sub))
    add_plan_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ColossusError as e:
        print(f"colossus: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ncolossus: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
