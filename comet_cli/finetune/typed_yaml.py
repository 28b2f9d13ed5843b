"""Strict loading of YAML into typed dataclasses: every value checked against its field's type (and
converted), unknown keys named with the nearest valid one, errors located at file:line. The recipe
schema itself is in config.py."""
from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from comet_cli.errors import RecipeError


def check_value(value: Any, tp: Any, key: str, where: Callable[[str], str]) -> Any:
    """`value` (from YAML) checked against type `tp` and converted (dicts to dataclasses).

    `key` is the dotted key for messages, `where(key)` the location (file:line or override).
    int is accepted for float, and so is a string that parses as a float: PyYAML reads `1e-4`
    (no dot) as a string.
    """
    def wrong(expected: str) -> RecipeError:
        return RecipeError(f"{where(key)}: {key}: expected {expected}, got {type(value).__name__} {value!r}")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong(f"a mapping ({tp.__name__})")
        hints = get_type_hints(tp)
        kwargs = {}
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            if k not in hints:
                raise RecipeError(f"{where(sub)}: unknown key '{sub}'{closest(str(k), list(hints), key)}")
            kwargs[k] = check_value(v, hints[k], sub, where)
        return tp(**kwargs)
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return check_value(value, options[0], key, where)
        for option in options:
            try:
                return check_value(value, option, key, where)
            except RecipeError:
                continue
        raise wrong(" or ".join(_type_name(a) for a in args))
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise wrong("one of " + ", ".join(repr(a) for a in args))
    if origin is list:
        if not isinstance(value, list):
            raise wrong(_type_name(tp))
        return [check_value(v, args[0], f"{key}.{i}", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise wrong(_type_name(tp))
        return {k: check_value(v, args[1], f"{key}.{k}", where) for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise wrong("float")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong("int")
    if tp in (bool, str):
        if isinstance(value, tp):
            return value
        raise wrong(tp.__name__)
    raise TypeError(f"recipe field {key} has unsupported type {tp!r}")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin, args = get_origin(tp), get_args(tp)
    if origin is list:
        return f"a list of {_type_name(args[0])}"
    if origin is dict:
        return f"a mapping of str to {_type_name(args[1])}"
    return getattr(tp, "__name__", str(tp))


def closest(name: str, candidates: Sequence[str], prefix: str) -> str:
    """' (did you mean 'prefix.x'?)' for the nearest candidate, or '' if none is close."""
    match = difflib.get_close_matches(name, [str(c) for c in candidates], n=1, cutoff=0.6)
    if not match:
        return f" (valid keys: {', '.join(map(str, candidates))})" if len(candidates) <= 12 else ""
    return f" (did you mean '{prefix + '.' if prefix else ''}{match[0]}'?)"


def key_lines(node, prefix: str = "", out: dict | None = None) -> dict[str, int]:
    """1-based line of every dotted key (list items by index) in a composed YAML node."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}"
            out[key] = k.start_mark.line + 1
            key_lines(v, key + ".", out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[f"{prefix}{i}"] = v.start_mark.line + 1
            key_lines(v, f"{prefix}{i}.", out)
    return out
