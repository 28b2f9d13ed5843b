"""Give a trained CoMeT folder a learned initial state (CometConfig.initial_state), seeded from a lead-in.

Each layer's initial global state is set to the state the model itself writes for one chunk of the
chat frame's prefix and the neutral lead-in line (r16/opening.py LEAD_IN) repeated to fill the chunk:
at step 0 the first document chunk is then gated into what an untrained lead-in chunk would have left
(r16/lead_in.py --text line measured that as a wash, 26/30, with depth-0 keys 4/6 instead of 2/6), and
training takes it from there. Everything else is copied unchanged.

    python benchmarks/results/training/r17/seed_initial.py runs/r16-mixed/model runs/r17-seed/model
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "r16"))
from opening import neutral_tokens  # noqa: E402


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    from comet_models.convert import MEMORY_FILE, load_comet
    from comet_models.runtime import chat_frame, feed, new_state

    model, tok = load_comet(src)
    C = model.comet_config.chunk_size
    prefix, _ = chat_frame(tok, "x")
    ids = prefix + neutral_tokens(tok, C - len(prefix) + 1)  # one token past the chunk closes it
    state = feed(model, new_state(model), ids)
    assert state.chunks == 1, state.chunks
    mems = state.layer_memories("cpu", torch.float32)
    shutil.copytree(src, out, dirs_exist_ok=False)
    with safe_open(str(src / MEMORY_FILE), framework="pt") as f:
        md = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    layer_keys = sorted({k.split(".comet_memory.")[0] for k in sd if ".comet_memory." in k},
                        key=lambda k: int(k.rsplit(".", 1)[-1]))
    assert len(layer_keys) == len(mems)
    for key, mem in zip(layer_keys, mems):
        sd[f"{key}.comet_memory.initial_state"] = mem.global_state[0].float().contiguous()
    comet = {**json.loads(md["comet"]), "initial_state": True}
    md = {**md, "comet": json.dumps(comet)}
    save_file(sd, str(out / MEMORY_FILE), metadata=md)
    conf = json.loads((out / "config.json").read_text())
    conf["comet"]["initial_state"] = True
    conf["comet"]["memory_weights"] = conf["comet"]["memory_weights"] + " + initial state from a lead-in chunk"
    (out / "config.json").write_text(json.dumps(conf, indent=2))
    seeded, _ = load_comet(out)  # loads strictly: every layer has its initial state
    conf["comet"]["fingerprint"] = seeded.comet_fingerprint
    (out / "config.json").write_text(json.dumps(conf, indent=2))
    norms = [round(m.global_state.float().norm(dim=-1).mean().item(), 2) for m in mems]
    print(json.dumps({"out": str(out), "fingerprint": seeded.comet_fingerprint, "layers": len(mems),
                      "slot_norm_first_last": [norms[0], norms[-1]]}))


if __name__ == "__main__":
    main()
