"""Several reads of one document (`--reads N`): shifted chunk boundaries, joint answers from the summed
log-probabilities, one cached state per read, and the pass-key grid reading each sample N times."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from comet_models.runtime import choose, feed, generate, new_state, read_shifts, score
from tests.test_read_support import comet, one_thread, tiny_model, write_text  # noqa: F401 (fixtures)
from tests.tiny import comet_model, sample


def test_read_shifts_spread_over_a_chunk():
    assert read_shifts(256, 1) == [0]
    assert read_shifts(256, 3) == [0, 85, 170]
    assert read_shifts(64, 4) == [0, 16, 32, 48]
    with pytest.raises(ValueError):
        read_shifts(256, 0)


def test_shift_prose_has_the_asked_length_and_repeats(tiny_model):
    from comet_models.convert import load_comet
    from comet_models.runtime import shift_ids

    _, tok = load_comet(tiny_model)
    a, b = shift_ids(tok, 40), shift_ids(tok, 9000)
    assert len(a) == 40 and len(b) == 9000 and b[:40] == a and shift_ids(tok, 0) == []
    assert "Mulligan" in tok.decode(shift_ids(tok, 20))
    from comet_models.runtime import read_prefixes
    assert read_prefixes(tok, [1, 2], 64, 2) == [[1, 2], [1, 2] + shift_ids(tok, 32)]


def _two_reads(model):
    doc = sample(16 * 3 + 5, seed=6)[0][0].tolist()
    plain = feed(model, new_state(model), doc)
    shifted = feed(model, new_state(model), [11, 12, 13, 14, 15] + doc)  # boundaries 5 tokens later
    return plain, shifted


def test_one_state_in_a_list_answers_as_the_state_alone():
    model = comet_model("llama", temp_stride=2)
    plain, _ = _two_reads(model)
    prompt = [7, 8, 9]
    alone = list(generate(model, plain, prompt, max_new_tokens=6))
    assert list(generate(model, [plain], prompt, max_new_tokens=6)) == alone
    assert list(generate(model, [plain, plain], prompt, max_new_tokens=6)) == alone  # twice the same read
    with pytest.raises(ValueError):
        next(generate(model, [], prompt))


def test_a_held_back_lead_goes_before_a_document_longer_than_the_open_chunk(tmp_path):
    """with_lead: a document that closes a chunk is read as if the lead came after the prefix (fed in
    any slices, and across a saved state); one that fits beside the prefix is read without it."""
    from comet_models.runtime import with_lead
    from comet_models.state import MemoryState

    model = comet_model("llama", temp_stride=2)
    C = model.comet_config.chunk_size
    prefix, lead = [3, 4, 5], sample(C, seed=8)[0][0].tolist()
    doc = sample(3 * C + 7, seed=9)[0][0].tolist()
    held = with_lead(feed(model, new_state(model), prefix), lead)
    straight = feed(model, new_state(model), prefix + lead + doc)
    sliced = feed(model, feed(model, held, doc[:C - 3]), doc[C - 3:])  # the first slice still fits
    assert (sliced.tokens, sliced.chunks, sliced.pending, sliced.lead) == \
        (straight.tokens, straight.chunks, straight.pending, [])
    assert sliced.sha256() == straight.sha256()
    held.save(tmp_path / "held.safetensors", C)
    loaded = MemoryState.load(tmp_path / "held.safetensors")
    assert (loaded.lead, loaded.lead_at) == (lead, 3) and loaded.sha256() == held.sha256() != \
        feed(model, new_state(model), prefix).sha256()
    assert feed(model, loaded, doc).sha256() == straight.sha256()
    short = doc[:C - len(prefix)]  # fits in the open chunk with the prefix: no lead, as before leads
    plain = feed(model, new_state(model), prefix + short)
    led = feed(model, held, short)
    assert led.pending == plain.pending and led.chunks == 0 and led.lead == lead
    prompt = [7, 8, 9]
    assert list(generate(model, led, prompt, max_new_tokens=6)) == list(generate(model, plain, prompt, max_new_tokens=6))


def test_joint_tokens_maximise_the_summed_log_probability():
    """Checked through runtime.score, which teacher-forces each read on its own: at every step the
    joint token has the highest sum over the reads of all tokens (and the reads do score differently)."""
    model = comet_model("llama", temp_stride=2)
    reads = _two_reads(model)
    prompt = [7, 8, 9]
    joint = list(generate(model, list(reads), prompt, max_new_tokens=3))
    vocab = model.config.vocab_size
    for i in range(3):
        each = torch.tensor([[score(model, st, prompt, joint[:i] + [t], max_new_tokens=3) for t in range(vocab)]
                             for st in reads])
        assert not torch.allclose(each[0], each[1], atol=1e-3)
        assert int(each.sum(0).argmax()) == joint[i]


def test_score_with_stop_adds_the_end_of_turn():
    model = comet_model("llama", temp_stride=2)
    plain, _ = _two_reads(model)
    prompt, ids = [7, 8, 9], [20, 21, 22]
    with_end = score(model, plain, prompt, ids, max_new_tokens=5, stop={5})
    assert with_end == pytest.approx(score(model, plain, prompt, ids + [5], max_new_tokens=5), abs=1e-5)
    both = score(model, plain, prompt, ids, max_new_tokens=5, stop={5, 6})
    assert both == pytest.approx(max(with_end, score(model, plain, prompt, ids + [6], max_new_tokens=5)), abs=1e-5)


def test_answer_picks_the_candidate_the_reads_score_highest():
    from comet_models.runtime import answer

    model = comet_model("llama", temp_stride=2)
    # two memories whose own answers and joint answer all differ (reads of different texts here)
    reads = [feed(model, new_state(model), sample(16 * 3 + 5, seed=s)[0][0].tolist()) for s in (6, 12)]
    prompt, stop = [7, 8, 9], {3, 4}
    assert answer(model, reads[0], prompt, 6, stop) == list(generate(model, reads[0], prompt, 6, stop))
    cands = [list(generate(model, list(reads), prompt, 6, stop))] + \
        [list(generate(model, st, prompt, 6, stop)) for st in reads]
    total = {tuple(c): sum(score(model, st, prompt, c, 6, stop=stop) for st in reads) for c in cands}
    assert len(total) == 3
    got = answer(model, list(reads), prompt, 6, stop)
    assert got == cands[choose(cands, [total[tuple(c)] for c in cands], 6, True)]


def test_choose_prefers_answers_that_end_then_the_best_log_probability_per_token():
    """Per token: a sum would take the shorter answer for its length alone, and an empty one first."""
    long_, short, empty, cut = [1, 2, 3, 4], [1, 2], [], [9] * 6  # cut: ran to max_new_tokens (6)
    assert choose([short, long_], [-3.0, -4.5], 6, True) == 1  # -0.9 per token beats -1.0 (a sum: -3 > -4.5)
    assert choose([short, long_], [-2.0, -5.0], 6, True) == 0  # -0.67 per token beats -1.0
    assert choose([empty, short], [-0.1, -6.0], 6, True) == 1  # something beats nothing
    assert choose([cut, short], [-0.6, -6.0], 6, True) == 1  # an answer that ends beats one cut off
    assert choose([cut, empty], [-9.0, -0.1], 6, True) == 0  # but says more than nothing
    assert choose([[5], [6]], [-2.0, -1.0], 6, False) == 1  # without the stop scored, per answer token


def _json(out: str) -> dict:
    return json.loads(out)


def test_ask_reads_twice_and_reuses_both_states(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 120)
    ask = ("ask", doc, "What is read?", "--model", tiny_model, "--json", "--max-new-tokens", "4")
    first = _json(comet(*ask, "--reads", "2")[1])
    assert first["reads"] == 2 and first["reused_state"] is False
    plain, shifted = (Path(p) for p in first["state_files"])
    assert plain == Path(first["state_file"]) and shifted.name == plain.stem + ".shift32.safetensors"
    assert plain.is_file() and shifted.is_file()
    again = _json(comet(*ask, "--reads", "2")[1])
    assert again["reused_state"] is True and again["tokens_read_this_run"] == 0
    assert again["answer"] == first["answer"]
    assert "candidates" not in first  # both reads and the joint answer agree here: nothing else weighed
    # one read takes the lead (runtime.reads_with_lead): its own cached state, beside the two reads'
    one = _json(comet(*ask, "--reads", "1")[1])
    assert one["reused_state"] is False and one["reads"] == 1 and "state_files" not in one
    assert Path(one["state_file"]).name == plain.stem + ".lead.safetensors"
    assert one["tokens_read"] == first["tokens_read"] + 64  # the tiny model's chunk: the lead
    assert _json(comet(*ask, "--reads", "1")[1])["reused_state"] is True
    assert _json(comet(*ask, "--reads", "2")[1])["reused_state"] is True  # both kept


def test_json_candidates_are_the_answers_weighed_best_first(tiny_model, monkeypatch):
    """`comet ask --json` lists the answers weighed when there were several (reads that disagree, a
    searched short answer): text and summed log-probability, the printed answer first."""
    import comet_models.runtime as runtime
    from comet_cli.commands.read import _ranked
    from comet_cli.modelref import load_model

    _, tok, _ = load_model(tiny_model)  # its tokenizer decodes; the model is test_answer_picks'
    model = comet_model("llama", temp_stride=2)
    monkeypatch.setattr(runtime, "stop_ids", lambda tok: {3, 4})
    reads = [feed(model, new_state(model), sample(16 * 3 + 5, seed=s)[0][0].tolist()) for s in (6, 12)]
    ranked = _ranked(model, tok, reads, [7, 8, 9], 6, 1.0, 4)
    expect = runtime.ranked_answers(model, reads, [7, 8, 9], 6, {3, 4}, width=4)
    assert len(ranked) == len(expect) >= 3  # the joint answer and each read's own differ here
    assert [c["text"] for c in ranked] == [tok.decode(ids, skip_special_tokens=True).strip() for ids, _ in expect]
    assert [c["logprob"] for c in ranked] == [round(lp, 3) for _, lp in expect]
    assert ranked[0]["text"] == tok.decode(runtime.answer(model, reads, [7, 8, 9], 6, {3, 4}, width=4),
                                           skip_special_tokens=True).strip()


def test_ask_reads_auto_three_times_up_to_the_limit_then_once(comet, tiny_model, tmp_path, monkeypatch):
    """`comet ask` reads by default (--reads auto) a multi-chunk input of at most AUTO_READS_MAX_TOKENS
    three times, a longer one once, on the tokens its first read counted; summarize reads once."""
    from comet_cli.reading import plan

    doc = write_text(tmp_path / "doc.txt", 60)
    ask = ("ask", doc, "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "2")
    code, out, err = comet(*ask, "--no-cache")
    d = _json(out)
    assert code == 0 and d["chunks"] > 0 and d["reads"] == 3 and len(d["state_files"]) == 3
    tokens = d["tokens_read"]
    assert tokens <= plan.AUTO_READS_MAX_TOKENS
    three = _json(comet(*ask, "--reads", "3", "--no-cache")[1])
    assert three["answer"] == d["answer"]  # auto's three reads are --reads 3's
    monkeypatch.setattr(plan, "AUTO_READS_MAX_TOKENS", tokens - 1)
    code, out, err = comet(*ask, "--no-cache")
    one = _json(out)
    assert code == 0 and one["reads"] == 1 and "state_files" not in one
    # the size estimate (1,380 tokens here) is past the limit too: the one read takes the lead, a chunk
    assert one["tokens_read"] == tokens + 64
    monkeypatch.setattr(plan, "AUTO_READS_MAX_TOKENS", tokens + 64)  # past the estimate: no lead, 3 reads
    code, out, err = comet("ask", doc, "Q?", "--model", tiny_model, "--max-new-tokens", "2", "--no-cache")
    assert code == 0 and "reading them 2 more times with shifted chunk boundaries" in err
    summary = _json(comet("summarize", doc, "--model", tiny_model, "--json", "--max-new-tokens", "2",
                          "--no-cache")[1])
    assert summary["reads"] == 1  # stdin: tests/test_read_cli.py::test_stdin


def test_auto_reads_counts_three_between_one_chunk_and_the_limit():
    from comet_cli.reading.plan import AUTO_READS_MAX_TOKENS, auto_reads

    assert [auto_reads(t, 64) for t in (None, 10, 64, 65, AUTO_READS_MAX_TOKENS, AUTO_READS_MAX_TOKENS + 1)] == \
        [1, 1, 1, 3, 3, 1]


def test_reads_option_refuses_bad_values(comet, tiny_model, tmp_path):
    import click

    from comet_cli.commands.read import ReadsParam

    doc = write_text(tmp_path / "doc.txt", 10)
    for bad in ("0", "9", "many"):
        assert comet("ask", doc, "Q?", "--model", tiny_model, "--reads", bad)[:2] == (2, "")  # usage error
        with pytest.raises(click.BadParameter, match="neither a number of reads from 1 to 8 nor 'auto'"):
            ReadsParam().convert(bad, None, None)
    assert [ReadsParam().convert(v, None, None) for v in ("AUTO", "2", 3)] == ["auto", 2, 3]


def test_ask_reads_with_a_named_state_file(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 80)
    st = tmp_path / "mem.safetensors"
    code, out, err = comet("ask", doc, "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "2",
                           "--state", str(st), "--reads", "3")
    assert code == 0, err
    assert _json(out)["state_files"] == [str(st), str(tmp_path / "mem.shift21.safetensors"),
                                         str(tmp_path / "mem.shift42.safetensors")]


def test_input_within_one_chunk_is_read_once(comet, tiny_model, tmp_path):
    doc = tmp_path / "short.txt"
    doc.write_text("A short note.\n")
    d = _json(comet("ask", str(doc), "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "2",
                    "--reads", "3", "--no-cache")[1])
    assert d["reads"] == 1 and d["chunks"] == 0


def test_a_long_input_is_read_after_the_lead_and_an_older_state_is_refused(comet, tiny_model, tmp_path):
    """`comet ask` reads one chunk more than a read without the lead (the prose, before the document),
    and a --state written without it (as versions before leads did) is a one-line error, not reused."""
    from comet_cli.readers import scan
    from comet_cli.reading.session import ReadOptions, read_document
    from comet_models.convert import load_comet
    from comet_models.runtime import chat_frame

    doc = write_text(tmp_path / "doc.txt", 40)
    model, tok = load_comet(tiny_model)
    old = tmp_path / "old.safetensors"
    before = read_document(model, tok, scan(str(doc)), chat_frame(tok, "Q?")[0], ReadOptions(state_file=old)).state
    args = ("ask", doc, "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "2", "--reads", "1")
    d = _json(comet(*args, "--state", tmp_path / "new.safetensors")[1])
    C = model.comet_config.chunk_size
    assert (d["chunks"], d["tokens_read"]) == (before.chunks + 1, before.tokens + C)
    code, out, err = comet(*args, "--state", old)
    assert code == 1 and out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert f"{old}: holds the state of other content (made with another chat frame or lead" in err


def test_stdin_cannot_be_read_twice(comet, tiny_model):
    code, out, err = comet("ask", "-", "Q?", "--model", tiny_model, "--reads", "2")
    assert code != 0 and out == "" and "stdin can be read only once" in err and "Traceback" not in err


def test_plan_counts_every_read(comet, tiny_model, tmp_path):
    doc = write_text(tmp_path / "doc.txt", 200)
    one = _json(comet("ask", doc, "Q?", "--model", tiny_model, "--dry-run", "--json", "--reads", "1")[1])
    three = _json(comet("ask", doc, "Q?", "--model", tiny_model, "--dry-run", "--json", "--reads", "3")[1])
    assert three["reads"] == 3 and one["reads"] == 1
    auto = _json(comet("ask", doc, "Q?", "--model", tiny_model, "--dry-run", "--json")[1])
    assert auto["reads"] == 3  # --reads auto plans three reads of this multi-chunk input
    # time is measured per run, so compare it through the rate each plan used
    # (both rounded to 0.1: tolerance 0.1 s)
    assert three["predicted_seconds"] == pytest.approx(3 * three["estimated_tokens"] / three["tokens_per_second"],
                                                       rel=0.01, abs=0.1)
    assert three["peak_memory_bytes"] - three["measured_rss_bytes"] > \
        one["peak_memory_bytes"] - one["measured_rss_bytes"]
    code, out, _ = comet("plan", doc, "--model", tiny_model, "--reads", "2")
    assert code == 0 and "(2 reads)" in out


def test_passkey_grid_with_reads_answers_from_every_read(tiny_model, monkeypatch):
    """Each depth's answer comes from one fork per read, each the straight read of its shifted stream."""
    import comet_models.runtime as R
    from comet_cli.eval import passkey as P
    from comet_cli.eval.methods import Answerer
    from comet_models.convert import load_comet

    model, tok = load_comet(tiny_model)
    # as `comet ask`: the lead with one read only (runtime.reads_with_lead); forced here
    assert Answerer(model, tok, "comet", reads=2).run_tag == "comet+reads2"
    assert Answerer(model, tok, "comet").run_tag == "comet+lead"
    ans = Answerer(model, tok, "comet", reads=2, lead=True)
    assert ans.run_tag == "comet+reads2+lead"
    seen = []
    real = R.weigh  # what the grid's answers come from (Answerer.answer_ids)

    def spy(m, states, *a, **k):
        seen.append(states)
        return real(m, states, *a, **k)

    monkeypatch.setattr(R, "weigh", spy)
    books = [str(p) for p in Path(__file__).parent.parent.glob("examples/*.txt")]
    rows = P.run_sample(ans, books, 300, [0.0, 1.0], seed=0, sample=0)
    assert [r["depth"] for r in rows] == [0.0, 1.0] and len(seen) == 2
    item, needle, fill = P.grid_sample(ans, books, 300, 0, 0)
    prefix, _ = ans.frame(item.question)
    C = model.comet_config.chunk_size
    shift = R.shift_ids(tok, C // 2)
    lead = R.lead_ids(tok, C, C // 2)  # the shift prose goes on for a chunk before the document
    assert shift + lead == R.shift_ids(tok, C + C // 2)
    straight = feed(model, new_state(model), prefix + shift + lead + needle + fill)  # depth 0, second read
    fork = seen[0][1]
    assert (fork.tokens, fork.chunks, fork.pending) == (straight.tokens, straight.chunks, straight.pending)
    assert torch.allclose(fork.global_state, straight.global_state, atol=1e-5)


def test_plan_names_the_cached_state_each_read_layout_uses(comet, tiny_model, tmp_path):
    """A summary's one read of a short input is `comet ask`'s plain first read (no lead: one cached state);
    `--reads 1` on ask takes the lead and keeps x.lead.safetensors; plan and --dry-run name the right one."""
    doc = write_text(tmp_path / "doc.txt", 60)
    common = ("--model", tiny_model, "--json", "--max-new-tokens", "2")
    summary = _json(comet("summarize", doc, *common)[1])
    assert _json(comet("summarize", doc, *common, "--dry-run")[1])["cached_state"] == summary["state_file"]
    asked = _json(comet("ask", doc, "Q?", *common)[1])  # auto: three reads, the first the summary's
    assert asked["reads"] == 3 and asked["state_file"] == summary["state_file"] and asked["reused_state"] is False
    assert _json(comet("ask", doc, "Q?", *common)[1])["reused_state"] is True
    assert _json(comet("plan", doc, "--model", tiny_model, "--json", "--reads", "1")[1])["cached_state"] is None
    one = _json(comet("ask", doc, "Q?", *common, "--reads", "1")[1])
    assert one["state_file"].endswith(".lead.safetensors")
    assert _json(comet("plan", doc, "--model", tiny_model, "--json", "--reads", "1")[1])["cached_state"] == \
        one["state_file"]


def test_a_long_inputs_summary_and_question_share_the_lead_read(comet, tiny_model, tmp_path, monkeypatch):
    """Past AUTO_READS_MAX_TOKENS (by the size estimate) summarize and ask both read once, with the lead,
    into the same cached state."""
    from comet_cli.reading import plan

    monkeypatch.setattr(plan, "AUTO_READS_MAX_TOKENS", 200)
    doc = write_text(tmp_path / "doc.txt", 60)
    common = ("--model", tiny_model, "--json", "--max-new-tokens", "2")
    summary = _json(comet("summarize", doc, *common)[1])
    assert summary["state_file"].endswith(".lead.safetensors") and summary["reused_state"] is False
    asked = _json(comet("ask", doc, "Q?", *common)[1])
    assert asked["reads"] == 1 and asked["reused_state"] is True and asked["state_file"] == summary["state_file"]
    assert asked["tokens_read"] == summary["tokens_read"] and asked["tokens_read_this_run"] == 0
