"""`comet state info FILE [--json]`."""
from __future__ import annotations

import click

from comet_cli import console


@click.group()
def state():
    """Inspect memory-state files written by `comet summarize/ask --state`."""


@state.command("info")
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def state_info(file, as_json):
    """Tokens and chunks read, model fingerprint, size and sha256 of a state FILE.

    Two runs over the same input with the same model give the same sha256."""
    from comet_models.state import read_state_metadata

    md = read_state_metadata(file)
    if as_json:
        console.result_json(md)
        return
    console.result("\n".join([
        f"file         {md['file']}",
        f"model        fingerprint {md['fingerprint']}",
        f"read         {md['tokens']:,} tokens, {md['chunks']:,} chunks closed, {md['pending_tokens']} pending",
        f"memory       {md['layers']} layers x ({md['global_slots']} global + {md['temp_budget']} temp slots, "
        f"{md['temp_valid']} valid) x {md['hidden']}",
        f"size         {md['state_bytes']:,} bytes of state, {md['file_bytes']:,} on disk",
        f"sha256       {md['sha256']}",
    ]))
