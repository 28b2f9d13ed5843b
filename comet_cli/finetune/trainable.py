"""Which parameters a recipe trains (`trainable.mode`), their optimizer groups, and their tensors.

memory  the memory modules (every parameter named `comet_memory`) and the rows of the new tokens
        (placeholder, temp beacon, global beacons). The embedding matrix must require grad for
        those rows to learn, so a gradient hook zeroes every other row; with zero gradients AdamW
        leaves those rows bit-identical (its embedding group has no weight decay).
lora    the same, plus LoRA adapters (peft) on `trainable.lora_targets` inside the base layers.
full    everything (METHOD.md 8.1, the official setting).

Memory modules train at lr * memory_lr_mult (METHOD.md 8.1: 5x); everything else at lr.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from comet_cli.errors import RecipeError
from comet_models.convert import memory_state_dict
from comet_models.inject import MEMORY_PREFIX

LORA_MARK = "lora_"


@dataclass
class TrainableSet:
    """What `mark_trainable` switched on: named parameters in optimizer groups."""

    mode: str
    memory: list[tuple[str, torch.nn.Parameter]] = field(default_factory=list)
    embeddings: list[tuple[str, torch.nn.Parameter]] = field(default_factory=list)
    other: list[tuple[str, torch.nn.Parameter]] = field(default_factory=list)
    hooks: list = field(default_factory=list)
    new_rows: list[int] = field(default_factory=list)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.memory + self.embeddings + self.other]

    def count(self) -> int:
        """Parameters that learn (for memory/lora only the new rows of the embeddings count)."""
        rows = len(self.new_rows) if self.mode != "full" else None
        emb = sum((rows * p.shape[1] if rows is not None else p.numel()) for _, p in self.embeddings)
        return sum(p.numel() for _, p in self.memory + self.other) + emb

    def param_groups(self, lr: float, weight_decay: float, memory_lr_mult: float) -> list[dict]:
        """AdamW groups; `base_lr` is kept per group so the schedule can scale it."""
        groups = [dict(params=[p for _, p in self.memory], base_lr=lr * memory_lr_mult, weight_decay=weight_decay),
                  dict(params=[p for _, p in self.embeddings], base_lr=lr, weight_decay=0.0),
                  dict(params=[p for _, p in self.other], base_lr=lr, weight_decay=weight_decay)]
        groups = [g for g in groups if g["params"]]
        for g in groups:
            g["lr"] = g["base_lr"]
        return groups


def new_token_ids(model) -> torch.Tensor:
    cfg = model.comet_config
    return torch.tensor([cfg.placeholder_id, cfg.temp_beacon_id] + cfg.global_beacon_ids)


def mark_trainable(model, section) -> TrainableSet:
    """Set requires_grad for `section.mode` (a recipe's TrainableSection) and return the groups.

    Call once, after the model is loaded and before the optimizer is built."""
    mode = section.mode
    if mode == "lora":
        add_lora(model, section.lora_rank, section.lora_alpha, section.lora_targets)
    embeddings = _embedding_params(model)
    emb_ids = {id(p) for _, p in embeddings}
    tset = TrainableSet(mode)
    for name, p in model.named_parameters():
        if MEMORY_PREFIX in name:
            p.requires_grad_(True)
            tset.memory.append((name, p))
        elif id(p) in emb_ids:
            p.requires_grad_(True)
        elif mode == "full" or (mode == "lora" and LORA_MARK in name):
            p.requires_grad_(True)
            tset.other.append((name, p))
        else:
            p.requires_grad_(False)
    if mode == "full":
        tset.other += embeddings
    else:
        tset.embeddings = embeddings
        ids = new_token_ids(model)
        tset.new_rows = ids.tolist()
        for _, p in embeddings:
            keep = torch.zeros(p.shape[0], 1, dtype=p.dtype, device=p.device)
            keep[ids.to(p.device)] = 1
            # Only the new tokens' rows learn: the other rows' gradient is zeroed before AdamW sees it.
            tset.hooks.append(p.register_hook(lambda g, keep=keep: g * keep))
    return tset


def _embedding_params(model) -> list[tuple[str, torch.nn.Parameter]]:
    """The input embedding and, if untied, the output embedding (each once)."""
    out, seen = [], set()
    named = {id(p): n for n, p in model.named_parameters()}
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is None or id(module.weight) in seen:
            continue
        seen.add(id(module.weight))
        out.append((named[id(module.weight)], module.weight))
    return out


def add_lora(model, rank: int, alpha: float, targets: list[str]) -> None:
    """Inject LoRA adapters (in place, no wrapper model) on the base layers' `targets` modules;
    the memory modules are never adapted (they are trained in full)."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise RecipeError("trainable.mode lora needs peft: pip install 'cometkit[lora]' (or pip install peft)") from None
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules() if MEMORY_PREFIX not in n}
    missing = [t for t in targets if t not in names]
    if missing or not targets:
        raise RecipeError(f"trainable.lora_targets: no module named {missing or targets} in this model "
                          f"(attention projections are usually q_proj, k_proj, v_proj, o_proj)")
    # A regex keeps peft away from anything under comet_memory.
    pattern = rf"^(?!.*{MEMORY_PREFIX}).*\.({'|'.join(targets)})$"
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=pattern, lora_dropout=0.0, bias="none")
    inject_adapter_in_model(config, model)


def lora_state_dict(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if LORA_MARK in k}


def merge_lora(model) -> int:
    """Fold every LoRA adapter into its base weight and put the plain module back; returns how many."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
            merged += 1
    return merged


def trainable_state_dict(model, tset: TrainableSet) -> dict[str, torch.Tensor]:
    """Everything a checkpoint must hold to restore the trained weights exactly: the memory file's
    tensors (memory modules + new rows), plus LoRA tensors, or every weight for `full`."""
    if tset.mode == "full":
        sd, seen = {}, set()
        for k, v in model.state_dict().items():
            if v.data_ptr() in seen:  # tied head
                continue
            seen.add(v.data_ptr())
            sd[k] = v.detach().contiguous()
        return sd
    sd = memory_state_dict(model)
    if tset.mode == "lora":
        sd.update(lora_state_dict(model))
    return sd


def load_trainable_state(model, sd: dict[str, torch.Tensor]) -> None:
    """Inverse of trainable_state_dict (on a model prepared with the same mark_trainable)."""
    sd = dict(sd)
    ids = new_token_ids(model)
    with torch.no_grad():
        for key, module in (("comet_new_token_rows.input", model.get_input_embeddings()),
                            ("comet_new_token_rows.output", model.get_output_embeddings())):
            rows = sd.pop(key, None)
            if rows is not None:
                module.weight[ids.to(module.weight.device)] = rows.to(module.weight)
    _, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected:
        raise RecipeError(f"checkpoint weights do not fit this model (unexpected {unexpected[:3]})")
