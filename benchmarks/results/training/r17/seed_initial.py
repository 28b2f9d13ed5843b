"""Give a trained CoMeT folder a learned initial state (CometConfig.initial_state), seeded from a lead-in.

Each layer's initial global state is set to the state the model itself writes for one chunk of the
chat frame's prefix and the neutral lead-in line (r16/opening.py LEAD_IN) repeated to fill the chunk:
at step 0 the first document chunk is then gated into what an untrained lead-in chunk would have left
(r16/lead_in.py --text line measured that as a wash, 26/30, with depth-0 keys 4/6 instead of 2/6), and
training takes it from there. Everything else is copied unchanged.

    python benchmarks/results/training/r17/seed_initial.py runs/r16-mixed/model runs/r17-seed/model
"""
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "r16"))
from opening import lead_chunk  # noqa: E402


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    from comet_models.convert import MEMORY_FILE, load_comet, model_fingerprint, save_memory_weights
    from comet_models.inject import memory_layers

    model, tok = load_comet(src)
    mems = lead_chunk(model, tok).layer_memories("cpu", torch.float32)
    for layer, mem in zip(memory_layers(model), mems, strict=True):
        layer.comet_memory.initial_state = torch.nn.Parameter(mem.global_state[0].float().clone())
    model.comet_config = dataclasses.replace(model.comet_config, initial_state=True)
    with safe_open(str(src / MEMORY_FILE), framework="pt") as f:
        training = {k: v for k, v in (f.metadata() or {}).items() if k == "training"}
    shutil.copytree(src, out, dirs_exist_ok=False)
    save_memory_weights(model, out / MEMORY_FILE, training)
    conf = json.loads((out / "config.json").read_text())
    conf["comet"].update(initial_state=True, fingerprint=model_fingerprint(model),
                         memory_weights=conf["comet"]["memory_weights"] + " + initial state from a lead-in chunk")
    (out / "config.json").write_text(json.dumps(conf, indent=2))
    seeded, _ = load_comet(out)  # loads strictly: every layer has its initial state
    assert seeded.comet_fingerprint == conf["comet"]["fingerprint"]
    norms = [round(m.global_state.float().norm(dim=-1).mean().item(), 2) for m in mems]
    print(json.dumps({"out": str(out), "fingerprint": seeded.comet_fingerprint, "layers": len(mems),
                      "slot_norm_first_last": [norms[0], norms[-1]]}))


if __name__ == "__main__":
    main()
