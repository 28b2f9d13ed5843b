"""Short answers searched whole (models/search.py): the beam against a slow reference that rebuilds every
answer's decoder from scratch, the pick against greedy decoding, and what `comet ask` streams."""
from __future__ import annotations

import pytest
import torch

from comet_models.runtime import _Decoder, _logprobs, answer, choose, feed, generate, new_state, score
from comet_models.search import SHORT_ANSWER, beam_search, horizon, stream_answer
from tests.tiny import comet_model, sample

STOP = set(range(0, 99, 3))  # a third of the tiny vocabulary ends an answer: short answers, often


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return comet_model("llama", temp_stride=2)


def _reads(model, seeds=(6, 12)):
    return [feed(model, new_state(model), sample(16 * 3 + 5, seed=s)[0][0].tolist()) for s in seeds]


@torch.inference_mode()
def _reference_beam(model, states, prompt, width, steps, stop, max_new):
    """The same beam, each answer's next-token log-probabilities computed by a fresh decoder per read
    that reads the final chunk and then every token of the answer (no forked caches)."""
    def next_lps(toks):
        out = []
        for st in states:
            dec = _Decoder(model, st, prompt, max_new)
            for t in toks:
                dec.step(t)
            out.append(_logprobs(dec))
        return out

    stop_ids = sorted(stop)
    beams, ended = [(0.0, [])], {}
    for _ in range(steps):
        grown = []
        for total, toks in beams:
            lps = next_lps(toks)
            top = torch.topk(sum(lps), width)
            if set(top.indices.tolist()) & stop:
                ended.setdefault(tuple(toks), total + sum(float(lp[stop_ids].max()) for lp in lps))
            grown += [(total + float(v), toks + [int(i)]) for v, i in zip(top.values, top.indices) if int(i) not in stop]
        beams = sorted(grown, key=lambda g: -g[0])[:width]
        if not beams or len(ended) >= width or max(ended.values(), default=-1e9) >= beams[0][0]:
            break
    return [list(t) for t, _ in sorted(ended.items(), key=lambda e: -e[1])]


@pytest.mark.parametrize("n_reads", [1, 2])
def test_beam_matches_the_slow_reference(model, n_reads):
    states = _reads(model)[:n_reads]
    prompt = [7, 8, 9]
    for stop in (STOP, set(range(0, 99, 7))):
        fast = beam_search(model, states, prompt, 3, 6, stop, max_new_tokens=6)
        slow = _reference_beam(model, states, prompt, 3, 6, stop, 6)
        assert [c for c, _ in fast] == slow and fast  # something ends within 6 tokens with these stop sets
        for c, lp in fast:  # each comes scored as runtime.score scores it, summed over the reads
            assert lp == pytest.approx(sum(score(model, st, prompt, c, 6, stop=stop) for st in states), abs=1e-4)


def test_beam_of_one_is_greedy_decoding(model):
    state = _reads(model)[0]
    for prompt in ([7, 8, 9], [10, 11], [40, 41, 42, 43]):
        greedy = list(generate(model, state, prompt, 8, STOP))
        assert len(greedy) < 8
        assert [c for c, _ in beam_search(model, [state], prompt, 1, 8, STOP, max_new_tokens=8)] == [greedy]


def test_the_search_picks_likelier_whole_answers_than_greedy(model):
    """Over many prompts the searched answer is never less likely per token than the greedy one (it is
    one of the candidates), and somewhere it is another, likelier answer: the search does something."""
    state, changed, stop = _reads(model)[0], 0, set(range(0, 99, 11))
    for a in range(20, 60, 2):
        prompt = [a, a + 1, 5]
        greedy = list(generate(model, state, prompt, 8, stop))
        got = answer(model, state, prompt, 8, stop, width=4)
        lp = lambda c: score(model, state, prompt, c, 8, stop=stop)  # noqa: E731
        assert choose([greedy, got], [lp(greedy), lp(got)], 8, True) == (0 if got == greedy else 1)
        changed += got != greedy
    assert changed > 0
    assert answer(model, state, [20, 21, 5], 8, STOP, width=1) == list(generate(model, state, [20, 21, 5], 8, STOP))


def test_ranked_answers_put_the_answer_first_and_score_the_others(model):
    from comet_models.runtime import ranked_answers

    state, stop = _reads(model)[0], set(range(0, 99, 11))
    for a in (20, 24, 32):
        prompt = [a, a + 1, 5]
        ranked = ranked_answers(model, state, prompt, 8, stop, width=4)
        assert ranked[0][0] == answer(model, state, prompt, 8, stop, width=4)
        assert len(ranked) > 1 and all(lp == pytest.approx(score(model, state, prompt, c, 8, stop=stop), abs=1e-4)
                                       for c, lp in ranked)
        assert len({tuple(c) for c, _ in ranked}) == len(ranked)
    # one candidate (greedy, no search): returned unscored
    assert ranked_answers(model, state, [20, 21, 5], 8, stop, width=1)[0][1] is None


def test_long_answers_are_not_searched_and_stream_as_generated(model):
    state = _reads(model)[0]
    few = {0}  # almost nothing ends: a long answer (it runs to max_new_tokens here)
    long_ = list(generate(model, state, [7, 8, 9], 40, few))
    assert len(long_) > SHORT_ANSWER
    assert answer(model, state, [7, 8, 9], 40, few, width=4) == long_
    assert list(stream_answer(model, [state], [7, 8, 9], 40, few, width=4)) == long_
    # a short one comes searched, as answer() gives it; several reads: answer()'s pick
    assert list(stream_answer(model, [state], [30, 31, 5], 8, STOP)) == answer(model, state, [30, 31, 5], 8, STOP,
                                                                               width=4)
    reads = _reads(model)
    assert list(stream_answer(model, reads, [30, 31, 5], 8, STOP)) == answer(model, reads, [30, 31, 5], 8, STOP,
                                                                             width=4)


def test_sampling_and_cut_off_answers_are_not_searched():
    from comet_models.search import searchable

    assert searchable([1, 2, 3], 12, 4, {}) and not searchable([1, 2, 3], 12, 1, {})
    assert not searchable([1, 2, 3], 12, 4, {"temperature": 0.7})
    assert not searchable([1] * 12, 12, 4, {})  # ran to max_new_tokens: it did not end
    assert not searchable([1] * (SHORT_ANSWER + 1), 256, 4, {})
    assert horizon(12) == 12 and horizon(256) == SHORT_ANSWER + 1


def test_the_cli_constants_are_the_models():
    from comet_cli.reading.plan import ANSWER_BEAM, ANSWER_SEARCH_TOKENS
    from comet_models.search import BEAM

    assert (ANSWER_BEAM, ANSWER_SEARCH_TOKENS) == (BEAM, SHORT_ANSWER)


@pytest.mark.parametrize("n_reads", [1, 3])
def test_weigh_holds_the_greedy_answer_and_the_searched_one(model, n_reads):
    """runtime.weigh marks which candidates greedy decoding gave: ranking those alone is answer() without
    the beam, ranking all is answer() with it (`comet eval` keeps both from one set of candidates)."""
    from comet_models.runtime import ranking, weigh

    states = [feed(model, new_state(model), sample(53, seed=s)[0][0].tolist()) for s in (6, 12, 3)][:n_reads]
    searched = 0
    for stop in ({3, 4}, set(range(0, 99, 11))):
        for a in range(20, 40, 3):
            prompt = [a, a + 1, 5]
            cands, totals, n_greedy = weigh(model, states, prompt, 8, stop, width=4)
            order = [0] if totals is None else ranking(cands, totals, 8, True)
            assert cands[next(i for i in order if i < n_greedy)] == answer(model, states, prompt, 8, stop)
            assert cands[order[0]] == answer(model, states, prompt, 8, stop, width=4)
            searched += len(cands) > n_greedy
    assert searched > 0  # the search added candidates somewhere
