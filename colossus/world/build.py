"""The synthetic world, built from a seed: `colossus data world --out DIR` writes it as jsonl.

    colossus data world --out runs/world --entities 1000 --seed 1337

Files: entities.jsonl, unknown.jsonl, documents.jsonl (pretraining), heldout_documents.jsonl (for
bits-per-byte), chat_train.jsonl (fine-tuning), chat_drill.jsonl (premise questions for the first stage
of pretraining, and copy conversations with copy_drill_per_entity > 0), eval_val.jsonl and eval_test.jsonl
(never trained on), world.json (the config and counts).

With a feed (feed_stories_per_entity > 0, see colossus.world.posts): feed_train_posts.jsonl (the posts the
training chats search; those chats are in chat_train.jsonl), feed_eval_posts.jsonl and feed_eval.jsonl
(held out: posts and questions for evaluation, never trained on; grade on a feed holding both files of
posts), and feed_truth.jsonl (what each post is). A world without a feed is written exactly as before the
feed existed: same files, same bytes, the feed's fields left out of world.json."""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from colossus.errors import ColossusError
from colossus.world.chats import build_drill_chats, build_eval_items, build_train_chats
from colossus.world.copy_drill import build_copy_chats
from colossus.world.documents import build_documents, build_no_record_documents
from colossus.world.entities import Entity, Unknown, build_entities
from colossus.world.feed_chats import CHAT_KIND, build_feed_chats, build_feed_eval_items
from colossus.world.names import Namer
from colossus.world.posts import WorldFeed, build_feed

FEED_CHAT_KINDS = frozenset(CHAT_KIND.values())


@dataclass
class WorldConfig:
    seed: int = 1337
    entities: int = 1000
    """People (60%), places (20%) and organisations (20%); every one has 6 facts."""
    docs_per_entity: int = 8
    """Documents per entity in the pretraining corpus, each a new wording and order."""
    heldout_docs: int = 200
    """Documents sampled afresh (never trained on) to measure bits-per-byte."""
    val_frac: float = 0.05
    """Entities whose Q&A is never trained, for choosing thresholds."""
    test_frac: float = 0.10
    """Entities whose Q&A is never trained, for the truth report."""
    unknown_names: float = 0.5
    """Unknown names in the chat data per entity, each in one conversation answered 'I don't know'."""
    no_record_docs: float = 0.0
    """Documents per entity that say a (fresh, unknown) name appears in no record."""
    readers: float = 0.0
    """Reading conversations per entity: a note about an invented entity, pasted, then asked about."""
    qa_per_entity: int = 2
    """Questions per train entity in the chat data (few, so that 'seen in Q&A' is no cue)."""
    multi_turn_frac: float = 0.2
    premise_per_entity: float = 0.5
    """Premise questions (half false, half true) per train entity, one to three per conversation."""
    premise_short_frac: float = 0.5
    """Share of premise questions that are the bare claim ("X works as a tailor, right?")."""
    premise_drill_per_entity: float = 0.0
    """Premise questions per train entity in the premise drill (chat_drill.jsonl), a stage of
    pretraining before the facts (see colossus.world.chats.build_drill_chats)."""
    copy_drill_per_entity: float = 0.0
    """Copy conversations per entity mixed into the drill (chat_drill.jsonl): fresh words, names and numbers
    asked back, that only copying from the context can answer (colossus.world.copy_drill). 0: none, and the
    world is written as before the copy drill existed."""
    system_prompt_frac: float = 0.3
    eval_known: int = 300
    eval_unknown: int = 300
    eval_premise: int = 200
    eval_recombined: int = 150
    """Unknown names made of known names' words (a harder test, reported on its own)."""
    reading_question_first: float = 0.0
    """Share of reading chats (a note pasted in the question) that ask the question before the note, as a search's
    posts stand between the question and its answer. 0: none, and the world is as before they existed."""
    feed_stories_per_entity: float = 0.0
    """Stories in the training feed per entity: posts dated after feed_cutoff (updates of known facts, new
    entities, true and false claims, rumours, injections; colossus.world.posts). 0: no feed."""
    feed_chats_per_entity: float = 0.0
    """Training chats per entity that search the feed and answer with citations (colossus.world.feed_chats)."""
    feed_eval: int = 0
    """Held-out feed stories, one question each (feed_eval.jsonl), their posts in feed_eval_posts.jsonl."""
    feed_cutoff: str = "2026-11-01"
    """The training cut-off: every post is dated after it (used only with a feed)."""
    feed_now: str = "2026-12-15"
    """The day the feed ends: "now" for the questions (used only with a feed)."""

    @property
    def has_feed(self) -> bool:
        return self.feed_stories_per_entity > 0 or self.feed_eval > 0

    def __post_init__(self) -> None:
        if self.entities < 20:
            raise ColossusError(f"--entities must be at least 20 (got {self.entities})")
        if not 0 < self.val_frac + self.test_frac < 0.9:
            raise ColossusError("val_frac + test_frac must be between 0 and 0.9")
        if self.docs_per_entity < 1:
            raise ColossusError("docs_per_entity must be at least 1")
        if min(self.feed_stories_per_entity, self.feed_chats_per_entity, self.feed_eval) < 0:
            raise ColossusError("feed_stories_per_entity, feed_chats_per_entity and feed_eval cannot be negative")
        if self.feed_chats_per_entity > 0 and self.feed_stories_per_entity <= 0:
            raise ColossusError("feed_chats_per_entity needs a feed to search: set feed_stories_per_entity too")
        if self.copy_drill_per_entity < 0:
            raise ColossusError("copy_drill_per_entity cannot be negative")
        if not 0 <= self.reading_question_first <= 1:
            raise ColossusError("reading_question_first is a share: between 0 and 1")


@dataclass
class World:
    config: WorldConfig
    entities: list[Entity]
    unknown: list[Unknown]
    documents: list[dict]
    heldout_documents: list[dict]
    chats: list[dict]
    drill_chats: list[dict]
    eval: dict[str, list[dict]]  # split -> items
    feed: WorldFeed | None = None
    feed_eval: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = {"entities": len(self.entities), "unknown_names": len(self.unknown),
             "documents": len(self.documents), "heldout_documents": len(self.heldout_documents),
             "chats": len(self.chats), "drill_chats": len(self.drill_chats),
             **{f"eval_{k}": len(v) for k, v in self.eval.items()}}
        if self.feed is not None:
            c.update(feed_train_posts=len(self.feed.posts("train")), feed_eval_posts=len(self.feed.posts("eval")),
                     feed_chats=sum(ch["kind"] in FEED_CHAT_KINDS for ch in self.chats), feed_eval=len(self.feed_eval))
        return c


def build_world(cfg: WorldConfig) -> World:
    scale = {"val": 0.5, "test": 1.0}  # the val split is half the size of the test split
    n_unknown = {"train": round(cfg.entities * cfg.unknown_names),
                 "no_record": round(cfg.entities * cfg.no_record_docs),
                 **{s: round(cfg.eval_unknown * f) for s, f in scale.items()}}
    n_recombined = {s: round(cfg.eval_recombined * f) for s, f in scale.items()}
    entities, unknown, readers = build_entities(cfg.seed, cfg.entities, cfg.val_frac, cfg.test_frac, n_unknown,
                                                round(cfg.entities * cfg.readers), n_recombined)
    docs = build_documents(cfg.seed, entities, cfg.docs_per_entity)
    docs += build_no_record_documents(cfg.seed, [u for u in unknown if u.split == "no_record"])
    random.Random(f"{cfg.seed}/docs-order").shuffle(docs)
    held = build_documents(cfg.seed, entities, 1, stream="heldout")[: cfg.heldout_docs]
    chats = build_train_chats(cfg.seed, entities, unknown, cfg.qa_per_entity, cfg.multi_turn_frac,
                              cfg.premise_per_entity, cfg.system_prompt_frac, readers, cfg.premise_short_frac,
                              cfg.reading_question_first)
    drill = build_drill_chats(cfg.seed, entities, cfg.premise_drill_per_entity, cfg.system_prompt_frac,
                              cfg.premise_short_frac)
    ev = {s: build_eval_items(cfg.seed, entities, unknown, s, round(cfg.eval_known * f),
                              round(cfg.eval_unknown * f), round(cfg.eval_premise * f))
          for s, f in scale.items()}
    if cfg.copy_drill_per_entity > 0:
        drill = add_copy_drill(cfg, drill, entities + readers, unknown)
    world = World(cfg, entities, unknown, docs, held, chats, drill, ev)
    if cfg.has_feed:
        add_feed(world, readers)
    return world


def add_copy_drill(cfg: WorldConfig, drill: list[dict], named: list[Entity], unknown: list[Unknown]) -> list[dict]:
    """The drill with copy conversations shuffled in; their fresh words collide with no name of the world. Their
    own random streams: the rest of the world is the same with or without them."""
    namer = Namer.beside(random.Random(f"{cfg.seed}/copy-names"), [e.name for e in named] + [u.name for u in unknown],
                         [e.name.split()[0] for e in named if e.kind == "person"])
    drill = drill + build_copy_chats(cfg.seed, namer, round(cfg.entities * cfg.copy_drill_per_entity),
                                     cfg.system_prompt_frac)
    random.Random(f"{cfg.seed}/copy-drill-order").shuffle(drill)
    return drill


def add_feed(world: World, readers: list[Entity]) -> None:
    """The feed's stories, its chats (shuffled into the chat data) and its held-out questions. Its own random
    streams: the rest of the world is the same with or without it."""
    cfg, entities = world.config, world.entities
    everyone = [e.name for e in entities + readers] + [u.name for u in world.unknown]
    first_names = [e.name.split()[0] for e in entities if e.kind == "person"]
    namer = Namer.beside(random.Random(f"{cfg.seed}/feed-names"), everyone, first_names)
    world.feed = build_feed(cfg.seed, entities, namer, round(cfg.entities * cfg.feed_stories_per_entity),
                            cfg.feed_eval, cfg.feed_cutoff, cfg.feed_now)
    told = [s.entity.name for s in world.feed.stories]  # the mentions' names: none of the world's nor the feed's
    fresh = Namer.beside(random.Random(f"{cfg.seed}/mention-names"), everyone + told, first_names)
    feed_chats = build_feed_chats(cfg.seed, world.feed, entities, round(cfg.entities * cfg.feed_chats_per_entity),
                                  cfg.system_prompt_frac, fresh)
    if feed_chats:
        world.chats = world.chats + feed_chats
        random.Random(f"{cfg.seed}/feed-chats-order").shuffle(world.chats)
    world.feed_eval = build_feed_eval_items(cfg.seed, world.feed)


def write_jsonl(path: Path, rows) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict]:
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError as e:
        raise ColossusError(f"missing {path}: write the world first with `colossus data world`") from e
    except json.JSONDecodeError as e:
        raise ColossusError(f"{path} is not valid jsonl ({e})") from e


def write_world(world: World, out: Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "entities.jsonl", (e.to_dict() for e in world.entities))
    write_jsonl(out / "unknown.jsonl", (u.to_dict() for u in world.unknown))
    write_jsonl(out / "documents.jsonl", world.documents)
    write_jsonl(out / "heldout_documents.jsonl", world.heldout_documents)
    write_jsonl(out / "chat_train.jsonl", world.chats)
    write_jsonl(out / "chat_drill.jsonl", world.drill_chats)
    for split, items in world.eval.items():
        write_jsonl(out / f"eval_{split}.jsonl", items)
    config = asdict(world.config)
    for added in ("copy_drill_per_entity", "reading_question_first"):  # unset: as written before they existed
        if not config[added]:
            config.pop(added)
    if world.feed is None:  # as written before the feed existed
        config = {k: v for k, v in config.items() if not k.startswith("feed_")}
    else:
        write_jsonl(out / "feed_train_posts.jsonl", world.feed.posts("train"))
        write_jsonl(out / "feed_eval_posts.jsonl", world.feed.posts("eval"))
        write_jsonl(out / "feed_truth.jsonl", world.feed.truth())
        write_jsonl(out / "feed_eval.jsonl", world.feed_eval)
    meta = {"config": config, "counts": world.counts()}
    (out / "world.json").write_text(json.dumps(meta, indent=2) + "\n")


def world_config_from(d: dict) -> WorldConfig:
    known = {f.name for f in fields(WorldConfig)}
    return WorldConfig(**{k: v for k, v in d.items() if k in known})


def generate(out: Path, cfg: WorldConfig, log=print) -> World:
    t0 = time.time()
    world = build_world(cfg)
    write_world(world, out)
    c = world.counts()
    log(f"world: {c['entities']:,} entities, {c['unknown_names']:,} unknown names, {c['documents']:,} documents, "
        f"{c['chats']:,} chats, {c['eval_test']:,} test questions -> {out} ({time.time() - t0:.1f}s)")
    return world
