"""`comet` as installed, plus two switches for the device runs (.dev/gpu_train.sh); no tracked file changes.

    python3 .dev/comet_dev.py ARGS...        same as `comet ARGS...`

COMET_EVAL_DEVICE=cuda   the model that comet_cli.modelref.load_model loads (`comet eval`, `comet ask`, ...)
                         is moved to that device; the streaming runtime follows the model's device.
                         Without CUDA it stays on the CPU (with a warning).
COMET_GRACEFUL_STOP=1    SIGTERM (e.g. from `timeout`) during `comet finetune` lets the current optimizer
                         step finish, writes checkpoints/step-N for it (and one metrics line marked
                         "stopped"), then stops like Ctrl-C. `comet finetune ... train.steps=N --resume DIR`
                         then only exports (lora.safetensors, memory.safetensors, model/). A second SIGTERM
                         stops at once.
"""
from __future__ import annotations

import json
import os
import signal
import sys


def _patch_eval_device(dev: str) -> None:
    import torch

    if dev.startswith("cuda") and not torch.cuda.is_available():
        print(f"[comet_dev] COMET_EVAL_DEVICE={dev} but CUDA is not available: staying on the CPU", file=sys.stderr)
        return
    import comet_cli.modelref as modelref

    original = modelref.load_model

    def load_model(*args, **kwargs):
        model, tok, folder = original(*args, **kwargs)
        print(f"[comet_dev] model moved to {dev}", file=sys.stderr)
        return model.to(dev), tok, folder

    modelref.load_model = load_model


def _graceful_stop() -> None:
    from comet_cli.finetune import train as T

    state = {"asked": False}

    def on_term(signum, frame):
        if state["asked"]:
            raise KeyboardInterrupt
        state["asked"] = True
        print("[comet_dev] SIGTERM: stopping after this step (with a checkpoint)", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, on_term)
    original = T.train_step

    def train_step(run, step):
        m = original(run, step)
        if state["asked"]:
            path = T.save_checkpoint(run, step)
            if run.dist.main:
                with open(run.output_dir / T.METRICS_FILE, "a") as f:
                    f.write(json.dumps({**{k: v for k, v in m.items() if k != "tokens"}, "stopped": True}) + "\n")
            print(f"[comet_dev] stopped at step {step}; checkpoint {path}", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        return m

    T.train_step = train_step


def main() -> None:
    dev = os.environ.get("COMET_EVAL_DEVICE", "").strip()
    if dev and dev.lower() not in ("none", "default"):
        _patch_eval_device(dev)
    if os.environ.get("COMET_GRACEFUL_STOP") == "1" and len(sys.argv) > 1 and sys.argv[1] == "finetune":
        _graceful_stop()
    from comet_cli.cli import main as cli_main

    sys.argv[0] = "comet"
    sys.exit(cli_main())


if __name__ == "__main__":
    main()
