"""A model directory: model.safetensors + config.json (+ tokenizer.json). Never pickle."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from colossus.errors import ColossusError
from colossus.model.config import ModelConfig
from colossus.model.gpt import GPT

WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.json"


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model directory, or a run directory that holds one in model/."""
    p = Path(path)
    if not p.exists():
        raise ColossusError(f"no model at {p}: the path does not exist")
    for cand in (p, p / "model"):
        if (cand / WEIGHTS).exists() and (cand / CONFIG).exists():
            return cand
    raise ColossusError(f"no model at {p}: expected {WEIGHTS} and {CONFIG} (train one with `colossus speedrun`)")


def save_weights(path: Path, model: GPT) -> None:
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()
             if not (k == "lm_head.weight" and model.cfg.tie_embeddings)}  # a tied head is the embedding
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)


def load_weights(path: Path, model: GPT) -> None:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ColossusError(f"weights {path} are corrupt or unreadable: {e}") from e
    shape = model.state_dict()
    wrong = [k for k, v in state.items() if k in shape and tuple(v.shape) != tuple(shape[k].shape)]
    if wrong:
        k = wrong[0]
        raise ColossusError(f"weights {path} do not match the model's shape: {k} is {tuple(state[k].shape)}, "
                            f"the model has {tuple(shape[k].shape)} ({len(wrong)} tensor(s) differ)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if model.cfg.tie_embeddings:
        missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise ColossusError(f"weights {path} do not match the config: missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]}")


def save_model(out: str | Path, model: GPT, tokenizer_path: str | Path | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(out / WEIGHTS, model)
    model.cfg.save(out / CONFIG)
    if tokenizer_path is not None and Path(tokenizer_path).resolve() != (out / TOKENIZER).resolve():
        shutil.copyfile(tokenizer_path, out / TOKENIZER)
    return out


def fused_state(cfg: ModelConfig, take: Callable[[str], torch.Tensor], names: Mapping[str, str],
                fix_qk: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Our state dict from an imported checkpoint: `take(name)` gives its tensor of that name, `names` the names
    of "embed", "norm", "head" and, with {i} for the layer, "attn_norm", "mlp_norm", "q", "k", "v", "o",
    "q_norm", "k_norm", "gate", "up", "down" (weights; a bias is its weight's name ending in bias), or for experts
    "router", "expert_gate", "expert_up", "expert_down" (with {e} for the expert, or stacked). k and v fuse into
    attn.kv, gate and up into mlp.up (MLP.forward chunks it so; a relu2 MLP has no gate; MoE stacks its
    experts'); fix_qk(weight, heads), when given, is applied to the q and k weights first (llama.cpp's
    permutation undone). split_state is its inverse."""
    out = {"embed.weight": take(names["embed"]), "norm.weight": take(names["norm"])}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = take(names["head"])
    for i in range(cfg.n_layer):
        n = {part: name.replace("{i}", str(i)) for part, name in names.items()}
        q = f"blocks.{i}."
        wq, wk = take(n["q"]), take(n["k"])
        if fix_qk is not None:
            wq, wk = fix_qk(wq, cfg.n_head), fix_qk(wk, cfg.n_kv_head)
        out[q + "attn_norm.weight"] = take(n["attn_norm"])
        out[q + "mlp_norm.weight"] = take(n["mlp_norm"])
        out[q + "attn.q.weight"] = wq
        out[q + "attn.kv.weight"] = torch.cat((wk, take(n["v"])))
        out[q + "attn.proj.weight"] = take(n["o"])
        if cfg.qkv_bias:
            bias = {part: n[part].removesuffix("weight") + "bias" for part in ("q", "k", "v")}
            out[q + "attn.q.bias"] = take(bias["q"])
            out[q + "attn.kv.bias"] = torch.cat((take(bias["k"]), take(bias["v"])))
        if cfg.qk_norm:
            out[q + "attn.q_norm.weight"] = take(n["q_norm"])
            out[q + "attn.k_norm.weight"] = take(n["k_norm"])
        if cfg.n_experts and "{e}" in n["expert_gate"]:  # one tensor per expert: its names with {e} for it
            experts = range(cfg.n_experts)
            out[q + "mlp.router.weight"] = take(n["router"])
            out[q + "mlp.up"] = torch.stack([torch.cat((take(n["expert_gate"].format(e=e)),
                                                        take(n["expert_up"].format(e=e)))) for e in experts])
            out[q + "mlp.down"] = torch.stack([take(n["expert_down"].format(e=e)) for e in experts])
        elif cfg.n_experts:  # every expert in one stacked tensor (n_experts, out, in)
            out[q + "mlp.router.weight"] = take(n["router"])
            out[q + "mlp.up"] = torch.cat((take(n["expert_gate"]), take(n["expert_up"])), dim=1)
            out[q + "mlp.down"] = take(n["expert_down"])
        else:
            out[q + "mlp.up.weight"] = (torch.cat((take(n["gate"]), take(n["up"]))) if cfg.mlp == "swiglu"
                                        else take(n["up"]))
            out[q + "mlp.down.weight"] = take(n["down"])
    return out


def split_state(cfg: ModelConfig, state: Mapping[str, torch.Tensor], names: Mapping[str, str],
                fix_qk: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The inverse of fused_state, for export: our state dict -> {their name: tensor} under the same `names`
    table (attn.kv split into k and v, mlp.up into gate and up); fix_qk(weight, heads) is applied to q and k last
    (llama.cpp's permutation). A tied head is left out, as the families' own checkpoints leave it."""
    out = {names["embed"]: state["embed.weight"], names["norm"]: state["norm.weight"]}
    if not cfg.tie_embeddings:
        out[names["head"]] = state["lm_head.weight"]
    kv_rows = cfg.n_kv_head * cfg.head_dim
    for i in range(cfg.n_layer):
        n = {part: name.replace("{i}", str(i)) for part, name in names.items()}
        q = f"blocks.{i}."
        wq, wk, wv = state[q + "attn.q.weight"], *state[q + "attn.kv.weight"].split(kv_rows)
        if fix_qk is not None:
            wq, wk = fix_qk(wq, cfg.n_head), fix_qk(wk, cfg.n_kv_head)
        out.update({n["attn_norm"]: state[q + "attn_norm.weight"], n["mlp_norm"]: state[q + "mlp_norm.weight"],
                    n["q"]: wq, n["k"]: wk, n["v"]: wv, n["o"]: state[q + "attn.proj.weight"]})
        if cfg.qkv_bias:
            bias = {part: n[part].removesuffix("weight") + "bias" for part in ("q", "k", "v")}
            out[bias["q"]] = state[q + "attn.q.bias"]
            out[bias["k"]], out[bias["v"]] = state[q + "attn.kv.bias"].split(kv_rows)
        if cfg.qk_norm:
            out[n["q_norm"]], out[n["k_norm"]] = state[q + "attn.q_norm.weight"], state[q + "attn.k_norm.weight"]
        if cfg.n_experts and "{e}" in n["expert_gate"]:  # one tensor per expert
            out[n["router"]] = state[q + "mlp.router.weight"]
            for e, (up, down) in enumerate(zip(state[q + "mlp.up"], state[q + "mlp.down"], strict=True)):
                out[n["expert_gate"].format(e=e)], out[n["expert_up"].format(e=e)] = up.chunk(2)
                out[n["expert_down"].format(e=e)] = down
        elif cfg.n_experts:  # stacked
            out[n["router"]] = state[q + "mlp.router.weight"]
            out[n["expert_gate"]], out[n["expert_up"]] = state[q + "mlp.up"].chunk(2, dim=1)
            out[n["expert_down"]] = state[q + "mlp.down"]
        elif cfg.mlp == "swiglu":
            out[n["gate"]], out[n["up"]] = state[q + "mlp.up.weight"].chunk(2)
            out[n["down"]] = state[q + "mlp.down.weight"]
        else:
            out[n["up"]] = state[q + "mlp.up.weight"]
            out[n["down"]] = state[q + "mlp.down.weight"]
    return out


def model_from_state(cfg: ModelConfig, state: dict[str, torch.Tensor], dtype: torch.dtype,
                     device: str | torch.device, source: str | Path) -> GPT:
    """A GPT of cfg holding `state` (our names) in dtype, for an imported checkpoint: every tensor's shape is
    checked against the config first, so a mismatch names the tensor and where it came from."""
    with torch.device("meta"):
        model = GPT(cfg)
    model = model.to_empty(device=device).to(dtype)
    model.tie()
    shapes = model.state_dict()
    for k, v in state.items():
        if tuple(v.shape) != tuple(shapes[k].shape):
            raise ColossusError(f"{source}: tensor for {k} is {tuple(v.shape)}, its config makes it "
                                f"{tuple(shapes[k].shape)}")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=not cfg.tie_embeddings)
    return model.eval()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> GPT:
    d = resolve_model_dir(path)
    cfg = ModelConfig.load(d / CONFIG)
    with torch.device("meta"):
        model = GPT(cfg)
    model = model.to_empty(device=device)
    model.tie()
    load_weights(d / WEIGHTS, model)
    return model.eval()
