"""Chunk planning for training (METHOD.md 8.3): how one sample's text is cut into chunks.

Pure functions over lengths and a `random.Random`; no torch. The trainer cuts each sample with
`plan_sample_chunks` (seeded by step and index; it draws a strategy with `draw_strategy` and cuts with
`plan_chunks`); `boundary_token_ids` says where the semantic strategy may cut.

Invariants (tested over many seeds): the sizes sum to the length, each size lies in
[1, chunk_size], each is at least min(min_size, chunk_size, length // ceil(length / chunk_size))
(min_size wherever the length allows it), and the count is at most max_chunks whenever
length <= max_chunks * chunk_size.
A longer sample needs ceil(length / chunk_size) chunks and gets exactly that many.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from comet_cli.errors import RecipeError

if TYPE_CHECKING:
    from comet_cli.finetune.data import Sample

BOUNDARY_ENDINGS = ("\n", ".", ",", "。")

STRATEGIES = ("fixed", "right_aligned", "random", "uniform", "semantic")

# METHOD.md 8.3, with the paper's C = 2048 and K * C = 32768 written in terms of C and K:
# short samples (L < C), medium (C <= L < 0.75 K C), long (L >= 0.75 K C).
DEFAULT_PROBS = {
    "short": {"fixed": 0.80, "right_aligned": 0.10, "random": 0.10},
    "medium": {"fixed": 0.60, "right_aligned": 0.10, "random": 0.20, "uniform": 0.05, "semantic": 0.05},
    "long": {"fixed": 0.60, "right_aligned": 0.10, "random": 0.10, "uniform": 0.20},
}


def length_band(length: int, chunk_size: int, max_chunks: int) -> str:
    """Which row of the METHOD.md 8.3 table a sample of `length` tokens falls in."""
    if length < chunk_size:
        return "short"
    if length < 0.75 * max_chunks * chunk_size:
        return "medium"
    return "long"


def draw_strategy(length: int, chunk_size: int, max_chunks: int, rng: random.Random,
                  probs: Mapping[str, float] | None = None, has_boundaries: bool = False) -> str:
    """Draw one planning strategy for a sample.

    probs=None uses METHOD.md's table for the sample's length band; a mapping {strategy: weight}
    (a recipe's `data.planner`) applies to every length. "semantic" needs token boundary flags:
    without them (has_boundaries=False) its weight is dropped and the rest renormalised.
    """
    table = dict(DEFAULT_PROBS[length_band(length, chunk_size, max_chunks)] if probs is None else probs)
    unknown = set(table) - set(STRATEGIES)
    if unknown:
        raise ValueError(f"unknown chunk strategies {sorted(unknown)}; known: {', '.join(STRATEGIES)}")
    if not has_boundaries:
        table.pop("semantic", None)
    names = [s for s in STRATEGIES if table.get(s, 0.0) > 0]
    if not names:
        return "fixed"
    return rng.choices(names, weights=[table[s] for s in names], k=1)[0]


def plan_chunks(length: int, chunk_size: int, max_chunks: int, rng: random.Random, strategy: str,
                min_size: int = 4, boundaries: Sequence[int] | None = None) -> list[int]:
    """Text chunk sizes for one sample of `length` tokens (METHOD.md 8.3).

    fixed          full chunks, remainder last
    right_aligned  remainder first, then full chunks
    random         count uniform in [ceil(L/C), min(L // min_size, K)], tokens spread at random
    uniform        as many chunks as allowed (K, fewer if that would undercut min_size), sizes
                   differing by at most one
    semantic       cut after a boundary token (`boundaries[t]` true: a chunk may end after token t),
                   scanning back from start + C; then repaired to the count and size bounds
    """
    if length < 0 or chunk_size < 1 or max_chunks < 1:
        raise ValueError(f"bad plan request: length={length}, chunk_size={chunk_size}, max_chunks={max_chunks}")
    if length == 0:
        return []
    needed = -(-length // chunk_size)
    # The size floor, lowered where the length cannot give every needed chunk min_size tokens.
    floor = min(min_size, chunk_size, length // needed)
    if strategy == "fixed":
        return _fixed(length, chunk_size, floor)
    if strategy == "right_aligned":
        return _fixed(length, chunk_size, floor)[::-1]
    if strategy == "random":
        return _random(length, chunk_size, max_chunks, floor, needed, rng)
    if strategy == "uniform":
        count = max(needed, min(max_chunks, length // floor))
        return _even(length, count)
    if strategy == "semantic":
        if boundaries is None or len(boundaries) != length:
            raise ValueError(f"semantic planning needs {length} boundary flags, "
                             f"got {None if boundaries is None else len(boundaries)}")
        return _semantic(length, chunk_size, max_chunks, floor, needed, boundaries)
    raise ValueError(f"unknown chunk strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def plan_sample(length: int, chunk_size: int, max_chunks: int, rng: random.Random,
                probs: Mapping[str, float] | None = None, min_size: int = 4,
                boundaries: Sequence[int] | None = None) -> tuple[str, list[int]]:
    """Draw a strategy and plan with it: returns (strategy, sizes)."""
    strategy = draw_strategy(length, chunk_size, max_chunks, rng, probs, has_boundaries=boundaries is not None)
    return strategy, plan_chunks(length, chunk_size, max_chunks, rng, strategy, min_size, boundaries)


def plan_sample_chunks(sample: "Sample", chunk_size: int, data, seed: int, step: int, index: int, world: int,
                       boundaries: frozenset) -> list[int]:
    """Chunk sizes from an RNG seeded by (seed, step, index), so a resumed run and --dry-run cut
    the same way; a pipeline gets at least `world` chunks (an even split if the plan has fewer).
    data.opening_tokens closes that many first tokens as a chunk of their own."""
    rng = random.Random(f"plan:{seed}:{step}:{index}")
    flags = [t in boundaries for t in sample.input_ids] if boundaries else None
    head = data.opening_tokens if 0 < data.opening_tokens < len(sample.input_ids) - 1 else 0
    _, sizes = plan_sample(len(sample.input_ids) - head, chunk_size, data.max_chunks, rng, data.planner,
                           boundaries=flags[head:] if flags else None)
    sizes = ([head] if head else []) + list(sizes)
    if len(sizes) < world:
        n = len(sample.input_ids)
        if n < world:
            raise RecipeError(f"a sample of {n} tokens cannot be split over {world} pipeline ranks")
        q, r = divmod(n, world)
        sizes = [q + 1] * r + [q] * (world - r)
    return sizes


def boundary_token_ids(tokenizer) -> frozenset[int]:
    """Ids whose text ends a sentence, clause or line (METHOD.md 8.3), plus end-of-turn tokens:
    where semantic chunk planning may cut (flags = [t in ids for t in input_ids])."""
    vocab = range(len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in vocab])
    ids = {i for i, t in zip(vocab, texts) if t.endswith(BOUNDARY_ENDINGS)}
    for tok in ("<|im_end|>", tokenizer.eos_token):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok else None
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return frozenset(ids)


def _even(length: int, count: int) -> list[int]:
    q, r = divmod(length, count)
    return [q + 1] * r + [q] * (count - r)


def _fixed(length: int, chunk_size: int, floor: int) -> list[int]:
    full, rest = divmod(length, chunk_size)
    return _lift_last([chunk_size] * full + ([rest] if rest else []), floor)


def _lift_last(sizes: list[int], floor: int) -> list[int]:
    # A last chunk below the floor borrows from the chunks before it, so no chunk is a sliver;
    # the floor is feasible (length >= count * floor), so there is always enough to borrow.
    i = len(sizes) - 2
    while sizes and sizes[-1] < floor and i >= 0:
        take = min(floor - sizes[-1], sizes[i] - floor)
        if take > 0:
            sizes[i] -= take
            sizes[-1] += take
        i -= 1
    return sizes


def _random(length: int, chunk_size: int, max_chunks: int, floor: int, needed: int,
            rng: random.Random) -> list[int]:
    high = max(needed, min(length // floor, max_chunks))
    count = rng.randint(needed, high)
    sizes = [floor] * count
    spare = length - floor * count
    # Each spare token goes to a random chunk that is not yet full; handed out in random-sized
    # helpings (at most 1/count of what is left) so long samples do not cost a draw per token.
    open_ = [i for i in range(count) if sizes[i] < chunk_size]
    while spare > 0:
        j = rng.randrange(len(open_))
        i = open_[j]
        take = min(spare, chunk_size - sizes[i], rng.randint(1, max(1, spare // count)))
        sizes[i] += take
        spare -= take
        if sizes[i] == chunk_size:
            open_[j] = open_[-1]
            open_.pop()
    rng.shuffle(sizes)
    return sizes


def _semantic(length: int, chunk_size: int, max_chunks: int, floor: int, needed: int,
              boundaries: Sequence[int]) -> list[int]:
    sizes: list[int] = []
    start = 0
    while length - start > chunk_size:
        cut = 0
        # The last token of the chunk is at start + n - 1; the longest chunk that ends on a boundary wins.
        for n in range(chunk_size, floor - 1, -1):
            if boundaries[start + n - 1]:
                cut = n
                break
        sizes.append(cut or chunk_size)
        start += sizes[-1]
    sizes.append(length - start)
    # Repair: only the remainder can undercut the floor (the scan respects it); merge it into the
    # chunk before or borrow from that chunk. Then merge the smallest neighbouring pair that fits
    # in C until the count is allowed; if nothing fits, fall back to fixed planning.
    if len(sizes) > 1 and sizes[-1] < floor:
        if sizes[-2] + sizes[-1] <= chunk_size:
            sizes[-2:] = [sizes[-2] + sizes[-1]]
        else:
            _lift_last(sizes, floor)
    limit = max_chunks if length <= max_chunks * chunk_size else needed
    while len(sizes) > limit:
        pairs = [(sizes[i] + sizes[i + 1], i) for i in range(len(sizes) - 1)
                 if sizes[i] + sizes[i + 1] <= chunk_size]
        if not pairs:
            return _fixed(length, chunk_size, floor)
        _, i = min(pairs)
        sizes[i:i + 2] = [sizes[i] + sizes[i + 1]]
    return sizes
