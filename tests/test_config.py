import pytest

from colossus.config import PRESETS, RunConfig, load_config
from colossus.errors import ColossusError


def test_presets_exist_and_roundtrip():
    assert {"tiny", "cpu", "gpu"} <= set(PRESETS)
    for name in PRESETS:
        cfg = load_config(name)
        assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_the_feed_preset_is_cpu_with_the_feed_the_copy_head_and_twice_the_context_at_the_same_tokens_a_step():
    cpu, feed = load_config("cpu"), load_config("feed")
    assert (cpu.world.feed_eval, cpu.model.copy_head) == (0, False)  # the default run has no feed yet
    w = feed.world
    assert (w.feed_stories_per_entity, w.feed_chats_per_entity, w.feed_eval) == (1.0, 2.0, 200)
    assert (feed.model.seq_len, feed.model.copy_head) == (2 * cpu.model.seq_len, True)
    for stage in ("drill", "pretrain", "sft"):
        a, b = getattr(cpu, stage), getattr(feed, stage)
        assert b.batch_size * feed.model.seq_len == a.batch_size * cpu.model.seq_len
    assert feed.world.entities == cpu.world.entities
    assert (cpu.pretrain.epochs, feed.pretrain.epochs) == (0.9, 1.0) and (cpu.sft.epochs, feed.sft.epochs) == (1.0, 2.0)
    assert (cpu.world.reading_question_first, cpu.world.copy_drill_per_entity) == (0.0, 0.0)
    assert (w.reading_question_first, w.copy_drill_per_entity) == (0.5, 4.0)
    assert (cpu.data.whole_word_min, feed.data.whole_word_min) == (0, 20)


def test_toml_and_set_override_fields(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[pretrain]\nlr = 0.005\nmuon = false\n[world]\nentities = 321\n")
    cfg = load_config("cpu", f, ["sft.steps=7", "model.mlp=swiglu", "pretrain.lr=0.006"])
    assert (cfg.pretrain.lr, cfg.pretrain.muon, cfg.world.entities) == (0.006, False, 321)
    assert cfg.sft.steps == 7 and cfg.model.mlp == "swiglu"
    assert load_config("cpu").pretrain.lr != 0.006  # presets are not modified


@pytest.mark.parametrize("overrides,message", [
    (["pretrain.lr=fast"], "pretrain.lr must be float"),
    (["pretrain.muon=1"], "pretrain.muon must be bool"),
    (["nope.x=1"], "unknown config section"),
    (["world.colour=1"], "unknown field world.colour"),
    (["pretrain"], "SECTION.FIELD=VALUE"),
    (["world.entities=3"], "at least 20"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(ColossusError, match=message):
        load_config("cpu", None, overrides)


def test_bad_preset_and_files(tmp_path):
    with pytest.raises(ColossusError, match="unknown preset"):
        load_config("huge")
    with pytest.raises(ColossusError, match="does not exist"):
        load_config("cpu", tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[pretrain\n")
    with pytest.raises(ColossusError, match="not valid TOML"):
        load_config("cpu", tmp_path / "bad.toml")


def test_tied_embeddings_reach_the_model_from_the_speedruns_setting(tok):
    from colossus.model.gpt import GPT
    from colossus.speedrun import model_config

    assert not model_config(load_config("cpu"), tok).tie_embeddings
    m = GPT(model_config(load_config("tiny", overrides=["model.tie_embeddings=true"]), tok))
    assert m.lm_head.weight is m.embed.weight
    assert m.num_params() < GPT(model_config(load_config("tiny"), tok)).num_params()
