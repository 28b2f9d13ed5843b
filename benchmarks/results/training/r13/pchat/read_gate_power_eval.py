"""r13 experiment: `comet eval ...` with every global-memory gate raised to the power GP at read time.

    GP=0.25 python benchmarks/results/training/r13/pchat/read_gate_power_eval.py eval passkey \
        --model runs/r12-pchat/model --lengths 16384 --depths 5 --samples 1 --dtype bfloat16 \
        --out benchmarks/results/training/r13/pchat/passkey16k_read_gp0.25.jsonl

GP < 1 makes every slot keep more of its state per chunk (GP -> 0 freezes it after its first write).
An experiment, not a feature: it patches MemoryModules.update_global for this process only.
"""
import os
import sys

import comet_models.memory as M
from comet_cli.cli import main

gp = float(os.environ["GP"])
_update = M.MemoryModules.update_global
M.MemoryModules.update_global = lambda self, s, r, gate_power=1.0: _update(self, s, r, gate_power * gp)
sys.argv = ["comet"] + sys.argv[1:]
main()
