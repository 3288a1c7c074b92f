"""Run configuration: one dataclass per stage, gathered in a RunConfig, with named presets.

    colossus speedrun --preset cpu                       the embedded default on 2 CPU cores
    colossus speedrun --preset cpu --config my.toml      a TOML file overrides any field
    colossus speedrun --preset cpu --set pretrain.lr=0.004 --set world.entities=800

A TOML file has one table per stage ([world], [data], [model], [drill], [pretrain], [sft]) holding the
fields of that stage's dataclass. [drill] trains on the world's premise drill (chat_drill.jsonl) before
pretraining; a world with no drill (world.premise_drill_per_entity = 0) skips it."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import tomllib

from colossus.errors import ColossusError
from colossus.train.config import TrainConfig
from colossus.world.build import WorldConfig


@dataclass
class ModelShape:
    """The model's shape; the vocabulary size comes from the tokenizer."""

    n_layer: int = 4
    d_model: int = 192
    n_head: int = 4
    n_kv_head: int = 4
    seq_len: int = 128
    mlp: str = "relu2"
    copy_head: bool = False
    """Copy from the context through a gated copy head (colossus.model.copy_head)."""
    tie_embeddings: bool = False
    """The output head shares the token embedding's matrix."""


@dataclass
class DataConfig:
    vocab_size: int = 4096
    """BPE vocabulary, special tokens included. Large enough that every word of every known name is
    one token (the world's names are two words each)."""
    whole_word_min: int = 0
    """0: plain BPE. n > 0: each capitalised word held n times or more (a known name's words) is one token, and the
    BPE merges no capitalised word and only pairs held n times, so that a name never seen is spelled from its capital
    letter in common pieces, which a model can copy from its context (colossus.data.tokenizer)."""
    pretrain_chat_frac: float = 0.75
    """Share of the chat data mixed into pretraining (the rest is for fine-tuning). Q&A seen while the
    facts are being stored teaches a small model to answer about facts it only read."""
    sft_doc_replay: float = 0.3
    """Documents replayed during fine-tuning, per conversation, so fine-tuning does not erase facts."""


@dataclass
class RunConfig:
    preset: str
    world: WorldConfig = field(default_factory=WorldConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelShape = field(default_factory=ModelShape)
    drill: TrainConfig = field(default_factory=lambda: TrainConfig(steps=0))
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    sft: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        cfg = cls(preset=d.get("preset", "custom"))
        apply_tables(cfg, {k: v for k, v in d.items() if k != "preset"})
        return cfg


PRESETS: dict[str, RunConfig] = {
    # the end-to-end test: every stage in about a minute, long enough to learn something it can pin. float32 on
    # every host (auto would pick bfloat16 where the CPU has it), so that its figures are the same everywhere
    "tiny": RunConfig(
        "tiny",
        world=WorldConfig(entities=60, docs_per_entity=16, qa_per_entity=4, unknown_names=1.0,
                          premise_per_entity=2.0, premise_drill_per_entity=8.0, no_record_docs=0.5,
                          readers=0.5, eval_known=30,
                          eval_unknown=30, eval_premise=20, eval_recombined=10, heldout_docs=20),
        data=DataConfig(vocab_size=512),
        model=ModelShape(n_layer=2, d_model=128, n_head=4, n_kv_head=2, seq_len=128),
        drill=TrainConfig(steps=40, batch_size=16, muon=True, warmup_steps=5, log_every=10, eval_every=0,
                          ckpt_every=20, dtype="fp32"),
        pretrain=TrainConfig(steps=400, batch_size=16, muon=True, warmup_steps=20, log_every=50, eval_every=100,
                             ckpt_every=100, dtype="fp32"),
        sft=TrainConfig(steps=60, batch_size=16, muon=True, lr=1e-3, embed_lr=1e-2, head_lr=1e-3, muon_lr=0.005,
                        warmup_steps=2, decay_frac=0.5, log_every=20, eval_every=0, ckpt_every=20, dtype="fp32"),
    ),
    # the embedded default: `make speedrun` on 2 CPU cores. float32 on every host, so that its figures do not depend
    # on whether the CPU has bfloat16 matmuls, and the time scales with the float32 matmul peak it reports;
    # compiled, the step is 1.40x faster than eager on the 2-core host (docs/benchmarks.md, "Training step"). The
    # drill and pretraining stop short of a whole pass (0.85 and 0.9 of one) so that a host with half the matmul
    # peak of README.md's run still finishes the chain within 15 minutes
    "cpu": RunConfig(
        "cpu",
        world=WorldConfig(entities=800, docs_per_entity=32, qa_per_entity=6, unknown_names=3.0,
                          premise_per_entity=20.0, premise_drill_per_entity=48.0, multi_turn_frac=0.5,
                          no_record_docs=3.0, readers=4.0),
        data=DataConfig(vocab_size=4096, pretrain_chat_frac=0.75, sft_doc_replay=0.3),
        model=ModelShape(n_layer=4, d_model=192, n_head=4, n_kv_head=4, seq_len=128),
        drill=TrainConfig(steps=0, epochs=0.85, batch_size=32, muon=True, warmup_steps=30, log_every=25,
                          eval_every=0, ckpt_every=100, dtype="fp32", compile=True),
        pretrain=TrainConfig(steps=0, epochs=0.9, batch_size=32, muon=True, warmup_steps=30, log_every=25,
                             eval_every=100, ckpt_every=100, dtype="fp32", compile=True),
        sft=TrainConfig(steps=0, batch_size=32, muon=True, lr=1e-3, embed_lr=1e-2, head_lr=1e-3,
                        muon_lr=0.005, warmup_steps=5, decay_frac=0.5, log_every=10, eval_every=0,
                        ckpt_every=50, dtype="fp32", compile=True),
    ),
    # one GPU: a larger world and model, the same recipe
    "gpu": RunConfig(
        "gpu",
        world=WorldConfig(entities=20000, docs_per_entity=32, qa_per_entity=6, unknown_names=3.0,
                          premise_per_entity=20.0, premise_drill_per_entity=48.0, multi_turn_frac=0.5,
                          no_record_docs=3.0, readers=4.0,
                          eval_known=1000, eval_unknown=1000, eval_premise=600, eval_recombined=500),
        data=DataConfig(vocab_size=32768, pretrain_chat_frac=0.75, sft_doc_replay=0.3),
        model=ModelShape(n_layer=12, d_model=768, n_head=6, n_kv_head=6, seq_len=512, mlp="relu2"),
        drill=TrainConfig(steps=0, batch_size=64, muon=True, warmup_steps=50, log_every=50, eval_every=0,
                          ckpt_every=500),
        pretrain=TrainConfig(steps=0, batch_size=64, muon=True, warmup_steps=100, log_every=50,
                             eval_every=500, ckpt_every=500),
        sft=TrainConfig(steps=0, batch_size=64, muon=True, lr=5e-4, embed_lr=5e-3, head_lr=5e-4,
                        muon_lr=0.005, warmup_steps=20, decay_frac=0.5, log_every=20, eval_every=0,
                        ckpt_every=200),
    ),
}


def feed_preset(base: RunConfig) -> RunConfig:
    """`base` with the world's feed: training chats that search it, 200 held-out feed questions in the report, the
    copy head, a context of 256 tokens (a question, a search, three posts and a cited answer) at the same
    tokens per step, half the reading chats asking before the note, the copy drill, a full pass of
    pretraining and two of fine-tuning, and a tokenizer that keeps the known names' words whole and spells the
    others from their capital letter. Apart from `cpu` while it is being tuned (issue 15): it changes every
    figure of the default run, and a model with a copy head cannot be exported to transformers or llama.cpp."""
    cfg = copy.deepcopy(base)
    cfg.preset = "feed"
    w = cfg.world
    w.feed_stories_per_entity, w.feed_chats_per_entity, w.feed_eval = 1.0, 2.0, 200
    # a question far from its answer, as a search's posts put it (with colossus.world.posts.ANSWER_WORDING, a new
    # entity's other fact restated in 6 of 40 answers, not 19), and copying fresh words, as a query copies a name
    w.reading_question_first, w.copy_drill_per_entity = 0.5, 4.0
    cfg.model.seq_len, cfg.model.copy_head = 2 * base.model.seq_len, True
    # a name it never saw spelled from its capital letter, not from rare half-built merges it cannot write (new and
    # unseen names without a search for them: 12 of 60 -> 2; colossus.data.tokenizer)
    cfg.data.whole_word_min = 20
    for stage in (cfg.drill, cfg.pretrain, cfg.sft):
        stage.batch_size //= 2
    cfg.pretrain.epochs = 1.0  # more of the facts (with the copy drill, known 0.897 -> 0.973 in one run each)
    cfg.sft.epochs = 2.0  # the tools' formats want more than one pass (feed_accuracy 0.625 -> 0.683)
    return cfg


PRESETS["feed"] = feed_preset(PRESETS["cpu"])


def parse_value(text: str):
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_tables(cfg: RunConfig, tables: dict) -> None:
    for section, values in tables.items():
        target = getattr(cfg, section, None)
        if not is_dataclass(target):
            raise ColossusError(f"unknown config section [{section}]: use world, data, model, drill, pretrain or sft")
        if not isinstance(values, dict):
            raise ColossusError(f"config section [{section}] must be a table of fields")
        names = {f.name: f for f in fields(target)}
        for k, v in values.items():
            if k not in names:
                raise ColossusError(f"unknown field {section}.{k}; fields are: {', '.join(sorted(names))}")
            current = getattr(target, k)
            if isinstance(current, bool) and not isinstance(v, bool) or \
                    isinstance(current, (int, float)) and not isinstance(current, bool) and \
                    (isinstance(v, bool) or not isinstance(v, (int, float))) or \
                    isinstance(current, str) and not isinstance(v, str):
                raise ColossusError(f"{section}.{k} must be {type(current).__name__}, not {v!r}")
            setattr(target, k, type(current)(v) if isinstance(current, float) else v)
        if hasattr(target, "__post_init__"):
            target.__post_init__()


def load_config(preset: str, config_file: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    if preset not in PRESETS:
        raise ColossusError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    cfg = copy.deepcopy(PRESETS[preset])
    if config_file is not None:
        try:
            tables = tomllib.loads(Path(config_file).read_text())
        except FileNotFoundError as e:
            raise ColossusError(f"config file {config_file} does not exist") from e
        except tomllib.TOMLDecodeError as e:
            raise ColossusError(f"config file {config_file} is not valid TOML: {e}") from e
        apply_tables(cfg, tables)
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ColossusError(f"--set {item!r}: write SECTION.FIELD=VALUE, e.g. pretrain.lr=0.004")
        apply_tables(cfg, {section: {name: parse_value(value)}})
    return cfg
