"""Shipped fine-tuning recipes (YAML); installed as the `comet_recipes` package."""
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent


def recipe_path(name: str) -> Path:
    """Path of a shipped recipe by file name (with or without `.yaml`)."""
    name = name if name.endswith(".yaml") else name + ".yaml"
    return RECIPES_DIR / name
