"""`comet eval`: every method answers through the same frame, the pass-key grid forks memory states
consistently with a straight read, results resume from --out, and bad input is one line."""
import json
from pathlib import Path

import pytest
import torch

from comet_cli.cli import main
from comet_cli.eval.methods import Answerer, same_memory_window
from comet_cli.eval.tasks import EvalItem

DOC = " ".join(f"Line {i}: the harbour master counted {i * 7} boats before noon." for i in range(60))


@pytest.fixture(scope="module")
def tiny(tiny_comet_folder):
    from comet_models.convert import load_comet

    torch.manual_seed(0)
    return load_comet(tiny_comet_folder)


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.mark.parametrize("method", ["comet", "truncate", "sliding", "mapreduce"])
def test_every_method_answers(tiny, method):
    model, tok = tiny
    ans = Answerer(model, tok, method, window=256, max_new_tokens=4)
    item = EvalItem("t", "1", DOC, "How many boats?", ["7"], "f1")
    assert isinstance(ans.answer(item), str)


def test_truncate_keeps_head_and_tail(tiny, monkeypatch):
    model, tok = tiny
    ans = Answerer(model, tok, "truncate", window=200, max_new_tokens=4)
    seen = {}
    monkeypatch.setattr(ans, "full_attention", lambda ids, max_new_tokens=None: seen.setdefault("ids", ids) and "")
    ans.answer(EvalItem("t", "1", DOC, "Q?", ["x"], "f1"))
    doc = ans.encode(DOC)
    prefix, suffix = ans.frame("Q?")
    ids = seen["ids"]
    assert len(ids) == 200 - 4
    assert ids[len(prefix):len(prefix) + 10] == doc[:10] and ids[-len(suffix) - 10:-len(suffix)] == doc[-10:]


def test_sliding_window_is_comets_memory_budget(tiny):
    model, _ = tiny
    cfg, conf = model.comet_config, model.config
    kv_per_token = 2 * conf.num_key_value_heads * (conf.hidden_size // conf.num_attention_heads)
    state_floats = (cfg.global_slots + cfg.temp_budget) * conf.hidden_size
    extra = same_memory_window(model) - cfg.chunk_size
    assert extra * kv_per_token <= state_floats < (extra + 1) * kv_per_token


def test_passkey_fork_equals_a_straight_read(tiny):
    """The grid reads shared filler once and forks states: the forked state must be the state of
    reading the whole sample in one go."""
    from comet_cli.eval import passkey as P
    from comet_models.runtime import feed, lead_ids, new_state

    model, tok = tiny
    ans = Answerer(model, tok, "comet", max_new_tokens=4)
    seen = []
    real_feed = feed

    def spy(m, state, ids):
        out = real_feed(m, state, ids)
        seen.append(out)
        return out

    import comet_models.runtime as R

    R.feed, saved = spy, R.feed
    try:
        books = [str(p) for p in __import__("pathlib").Path(__file__).parent.parent.glob("examples/*.txt")]
        rows = P.run_sample(ans, books, 300, [0.0, 0.5, 1.0], seed=0, sample=0)
    finally:
        R.feed = saved
    assert [r["depth"] for r in rows] == [0.0, 0.5, 1.0] and all(r["key"] == rows[0]["key"] for r in rows)
    # Rebuild the depth-0.5 sample and read it straight.
    import random

    rng = random.Random("passkey-grid:0:300:0")
    key = str(rng.randint(10000, 99999))
    needle = ans.encode(" " + P.NEEDLE.format(key=key))
    fill = P.filler_tokens(ans, books, 300 - len(needle), rng)
    prefix, _ = ans.frame(P.QUESTION)
    pos = round(0.5 * len(fill))
    lead = lead_ids(tok, model.comet_config.chunk_size, 0)  # 300 tokens do not fit beside the prompt
    straight = feed(model, new_state(model), prefix + lead + fill[:pos] + needle + fill[pos:])
    forked = [s for s in seen if s.tokens == straight.tokens and s.pending == straight.pending]
    assert any(torch.allclose(s.global_state, straight.global_state, atol=1e-5)
               and torch.allclose(s.temp_memory, straight.temp_memory, atol=1e-5) for s in forked)
    # ...and a different depth gives a different state (the comparison can fail)
    assert not all(torch.allclose(s.global_state, straight.global_state, atol=1e-5) for s in forked)


def test_unknown_task_and_bad_out_file_are_one_line(tmp_path, capsys, tiny_comet_folder):
    code, _, err = run_cli(["eval", "qmsumm", "--model", str(tiny_comet_folder)], capsys)
    assert code == 1 and "unknown task 'qmsumm'" in err and "did you mean 'qmsum'" in err and "Traceback" not in err
    bad = tmp_path / "out.jsonl"
    bad.write_text('{"id": "x"}\nnot json\n')
    code, _, err = run_cli(["eval", "passkey", "--lengths", "128", "--depths", "1", "--model", str(tiny_comet_folder),
                            "--out", str(bad), "-q"], capsys)
    assert code == 1 and f"{bad}:2:" in err and len(err.strip().splitlines()) == 1


def test_malformed_task_file_names_the_line(tmp_path, capsys, tiny_comet_folder):
    (tmp_path / "qmsum").mkdir()
    (tmp_path / "qmsum" / "test.jsonl").write_text("{}\n{not json\n")
    code, _, err = run_cli(["eval", "qmsum", "--data", str(tmp_path), "--model", str(tiny_comet_folder), "-q"], capsys)
    assert code == 1 and "test.jsonl:1" in err and "Traceback" not in err


def test_passkey_sample_ranges_split_a_grid(tmp_path, capsys, tiny_comet_folder):
    """--samples A-B runs only those samples: two processes with ranges 0-0 and 1-2 sharing --out give
    the lines of one --samples 3 run; an empty or malformed range is a usage error that names it."""
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b.txt").write_text(DOC * 3)
    base = ["eval", "passkey", "--lengths", "200", "--depths", "2", "--model", str(tiny_comet_folder),
            "--data", str(tmp_path), "--json", "-q"]
    ids = lambda f: sorted(json.loads(x)["id"] for x in f.read_text().splitlines())  # noqa: E731
    whole, split = tmp_path / "whole.jsonl", tmp_path / "split.jsonl"
    assert run_cli(base + ["--samples", "3", "--out", str(whole)], capsys)[0] == 0
    code, stdout, _ = run_cli(base + ["--samples", "1-2", "--out", str(split)], capsys)
    assert code == 0 and json.loads(stdout)["items"] == 4  # two samples x two depths
    assert ids(split) == ids(whole)[1:]
    assert run_cli(base + ["--samples", "0-0", "--out", str(split)], capsys)[0] == 0
    assert ids(split) == ids(whole)
    answers = lambda f: sorted((r["sample"], r["depth"], r["key"], r["answer"])  # noqa: E731
                               for x in f.read_text().splitlines() for r in json.loads(x)["rows"])
    assert answers(split) == answers(whole)
    for bad in ("0", "5-4", "x"):
        code, _, err = run_cli(base + ["--samples", bad], capsys)
        assert code == 2 and f"{bad!r}" in err and "Traceback" not in err


def test_passkey_explicit_depths_read_the_grids_cells(tmp_path, capsys, tiny_comet_folder):
    """--depths 0.5 reads one cell of the --depths 3 grid: the same sample, cut at the same place, so the
    same key and answer (a 1M cell for one 1M read); bad depths are a usage error that names them."""
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b.txt").write_text(DOC * 3)
    base = ["eval", "passkey", "--lengths", "200", "--samples", "2", "--model", str(tiny_comet_folder),
            "--data", str(tmp_path), "--json", "-q"]
    rows = lambda f: {(r["sample"], r["depth"]): (r["key"], r["answer"])  # noqa: E731
                      for x in f.read_text().splitlines() for r in json.loads(x)["rows"]}
    grid, cell = tmp_path / "grid.jsonl", tmp_path / "cell.jsonl"
    assert run_cli(base + ["--depths", "3", "--out", str(grid)], capsys)[0] == 0
    code, stdout, _ = run_cli(base + ["--depths", "0.5", "--out", str(cell)], capsys)
    assert code == 0 and json.loads(stdout)["items"] == 2
    got = rows(cell)
    assert sorted(got) == [(0, 0.5), (1, 0.5)]
    assert got == {k: v for k, v in rows(grid).items() if k[1] == 0.5}
    assert all(":at0.5:" in json.loads(x)["id"] for x in cell.read_text().splitlines())
    for bad in ("0", "1.5", "0.5,x", "1,2"):
        code, _, err = run_cli(base + ["--depths", bad], capsys)
        assert code == 2 and f"{bad!r}" in err and "Traceback" not in err


def test_passkey_results_resume_from_out(tmp_path, capsys, tiny_comet_folder):
    out = tmp_path / "pk.jsonl"
    args = ["eval", "passkey", "--lengths", "200", "--depths", "2", "--model", str(tiny_comet_folder),
            "--data", str(tmp_path), "--out", str(out), "--json", "-q"]
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b.txt").write_text(DOC * 3)
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    first = json.loads(stdout)
    assert first["items"] == 2 and set(first["grid"]["200"]) == {"0.0", "1.0"}
    assert not (tmp_path / "pk.jsonl.partial").exists()  # resume points go once their sample is written
    lines = out.read_text().splitlines()
    # without -q and without a terminal (a log file), the progress comes as plain lines on stderr
    code, _, err = run_cli([a for a in args if a != "-q"] + ["--out", str(tmp_path / "log.jsonl")], capsys)
    assert code == 0 and "passkey (comet) sample 0, length 200 depth 1.00: " in err
    assert "sample 0, length 200: " in err and "depths right" in err and "answered" in err
    code, stdout, _ = run_cli(args, capsys)
    assert code == 0 and json.loads(stdout)["grid"] == first["grid"] and out.read_text().splitlines() == lines
    # another precision is another run: its samples are read, not taken from the float32 rows
    code, stdout, err = run_cli(args + ["--dtype", "bfloat16"], capsys)
    assert code == 0 and json.loads(stdout)["dtype"] == "bfloat16", err
    new = [json.loads(x)["id"] for x in out.read_text().splitlines()[len(lines):]]
    assert new == ["passkey:comet+lead+beam4@bfloat16:200:2:0"]
    # rows read without the lead and the beam are the ids of the rows read before either existed
    code, stdout, err = run_cli(args + ["--no-lead", "--beam", "1"], capsys)
    assert code == 0, err
    added = [json.loads(x) for x in out.read_text().splitlines()[len(lines) + 1:]]
    assert [a["id"] for a in added] == ["passkey:comet:200:2:0"]
    # a beam's rows keep the greedy answer beside theirs; greedy rows have only theirs
    beam_rows = [json.loads(x) for x in lines][0]["rows"]
    assert all({"greedy_answer", "greedy_correct", "key_lp", "rival_lp"} <= set(r) for r in beam_rows)
    assert all("greedy_answer" not in r for r in added[0]["rows"])


def test_babilong_grid_hides_the_facts_and_checks_the_answer_word(tmp_path, capsys, tiny_comet_folder):
    from comet_cli.eval.passkey import Needle

    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "b.txt").write_text(DOC * 3)
    babi = tmp_path / "babi" / "en"
    babi.mkdir(parents=True)
    story = "1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary?\tbathroom\t1\n"
    for name in ("qa1_single-supporting-fact_test.txt", "qa2_two-supporting-facts_test.txt"):
        (babi / name).write_text(story)
    args = ["eval", "babilong", "--lengths", "200", "--depths", "3", "--model", str(tiny_comet_folder),
            "--data", str(tmp_path), "--out", str(tmp_path / "b.jsonl"), "--json", "-q"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    res = json.loads(stdout)
    assert res["task"] == "babilong" and res["items"] == 3 and set(res["grid"]["200"]) == {"0.0", "0.5", "1.0"}
    rows = json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])["rows"]
    assert {r["key"] for r in rows} == {"bathroom"}
    needle = Needle("Mary moved to the bathroom.", "Where is Mary?", "bathroom", kind="babilong")
    assert needle.correct("She is in the Bathroom.") and not needle.correct("the bath") \
        and not needle.correct("bathrooms")
    (babi / "qa2_two-supporting-facts_test.txt").unlink()
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "qa2_two-supporting-facts_test.txt" in err and "Traceback" not in err


def test_heatmap_labels_and_cells_not_run(tmp_path):
    from comet_cli.eval.passkey import _k, plot_heatmaps

    assert [_k(n) for n in (4096, 16384, 262144, 1048576, 1_000_000, 2000, 1500)] == \
        ["4k", "16k", "256k", "1M", "1M", "2k", "1500"]
    pytest.importorskip("matplotlib")
    row = {"length": 4096, "depth": 0.0, "sample": 0, "key": "12345", "answer": "12345", "correct": True}
    out = tmp_path / "grid.png"
    # one method lacks the 1M column: both panels still get it (as "not run"), nothing raises
    plot_heatmaps({"a": [row, {**row, "length": 1048576}], "b": [row]}, out, lengths=[4096, 1048576])
    assert out.stat().st_size > 1000


class _Stop(Exception):
    pass


def _stopped_and_resumed(tiny, folder, stop_at: str, depths, reads=1):
    """(straight rows, rows of a run stopped at the first progress line containing `stop_at` and then
    resumed, the resumed run's progress lines, the resume files and trunk at the stop); rows without
    their timings. Resume points every 64 tokens in `folder`."""
    from comet_cli.eval import passkey as P
    from comet_cli.eval.resume import SampleResume
    from comet_models.runtime import new_state

    model, tok = tiny
    ans = Answerer(model, tok, "comet", max_new_tokens=4, reads=reads)
    books = [str(p) for p in (Path(__file__).parent.parent / "examples").glob("*.txt")]
    args = (ans, books, 700, depths, 0, 0)
    straight = P.run_sample(*args)

    def stop(msg):
        if stop_at in msg:
            raise _Stop

    with pytest.raises(_Stop):
        P.run_sample(*args, progress=stop, resume=SampleResume(folder, "s0", every=64))
    files = sorted(f.name for f in folder.glob("*.safetensors"))
    trunk = SampleResume(folder, "s0").trunk([new_state(model)] * reads, straight[0]["key"])
    log: list[str] = []
    resumed = P.run_sample(*args, progress=log.append, resume=SampleResume(folder, "s0", every=64))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    return strip(straight), strip(resumed), log, files, trunk


def test_passkey_sample_resumes_inside_a_depth(tiny, tmp_path):
    """A sample stopped in the middle of a fork picks up from its resume points and answers exactly as
    an uninterrupted one."""
    folder = tmp_path / "pk.jsonl.partial"
    straight, resumed, log, files, trunk = _stopped_and_resumed(tiny, folder, "depth 0.50: 128 of",
                                                                [0.0, 0.5, 1.0])
    assert files == ["s0.fork.safetensors", "s0.trunk.safetensors"]  # the trunk at depth 0.5, the fork
    # the trunk was kept where depth 0.5's fork starts, so a resumed sample reads no filler twice
    (state,), done, rows = trunk
    assert len(rows) == 1 and 0 < done < 700 and state.tokens > done
    assert any("resumed after 1 of 3 depths" in m for m in log)
    assert any("depth 0.50: resumed at token 128" in m for m in log)
    assert resumed == straight
    assert not folder.exists()  # cleared once the sample is done


def test_resume_points_name_their_sample(tiny, tmp_path):
    """A resume point tagged for another key or sample (another grid) is not picked up, and several
    reads resume all together or not at all."""
    from comet_cli.eval.resume import SampleResume
    from comet_models.runtime import feed, new_state

    model = tiny[0]
    folder, rows = tmp_path / "p", [{"depth": 0.0}]
    SampleResume(folder, "s0").save_trunk([feed(model, new_state(model), [5] * 40)], "12345", 40, rows)
    (state,), done, got = SampleResume(folder, "s0").trunk([new_state(model)], "12345")
    assert got == rows and done == 40 and state.tokens == 40
    assert SampleResume(folder, "s0").trunk([new_state(model)], "00000") is None
    assert SampleResume(folder, "s1").trunk([new_state(model)], "12345") is None
    # several reads: all of them or none
    assert SampleResume(folder, "s0").trunk([new_state(model)] * 2, "12345") is None


def test_passkey_sample_of_three_reads_resumes(tiny, tmp_path):
    """With --reads 3 every read keeps its resume points: a sample stopped in the middle of the second
    read's fork resumes the first read's finished fork and the second's partial one, and answers
    exactly as an uninterrupted sample."""
    folder = tmp_path / "pk.jsonl.partial"
    straight, resumed, log, files, _ = _stopped_and_resumed(tiny, folder, "depth 0.50 read 2: 128 of",
                                                            [0.0, 0.5, 1.0], reads=3)
    # three trunks at depth 0.5; forks: read 1's whole, read 2's in progress, read 3's of depth 0 (stale:
    # its tag names another depth, so it is never taken for depth 0.5's)
    assert sum(f.endswith("trunk.safetensors") for f in files) == 3
    assert sum(f.endswith("fork.safetensors") for f in files) == 3
    assert any("resumed after 1 of 3 depths" in m for m in log)
    assert any("depth 0.50: resumed at token" in m for m in log)  # read 1, finished before the stop
    assert any("depth 0.50 read 2: resumed at token 128" in m for m in log)
    assert not any("depth 0.50: 64 of" in m for m in log)  # read 1's fork was not read again
    assert resumed == straight
    assert not folder.exists()


def test_passkey_sample_resumes_inside_the_filler(tiny, tmp_path):
    """The filler before a depth is read in slices with resume points too (at 1M tokens it is 250k
    tokens between depths): a sample stopped there resumes from the last slice, exactly."""
    straight, resumed, log, _, (_, done, _) = _stopped_and_resumed(tiny, tmp_path / "p", "filler 128 of",
                                                                   [0.5, 1.0])
    assert done == 128  # the trunk's last slice before the stop
    assert any("resumed after 0 of 2 depths" in m for m in log)
    assert not any("filler 64 of" in m for m in log) and any("filler 192 of" in m for m in log)
    assert resumed == straight


def test_grid_greedy_rows_take_a_beam_only_samples_greedy_answers(tmp_path, monkeypatch):
    """benchmarks/passkey_grid.py: a -greedy row reads its own file, and a sample read only with the beam
    gives its rows' greedy answers (the same read decoded greedily), never the beam's."""
    import importlib.util
    import types

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "passkey_grid.py"
    spec = importlib.util.spec_from_file_location("passkey_grid", path)
    grid = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid)
    monkeypatch.setattr(grid, "RESULTS", tmp_path)
    (tmp_path / "passkey").mkdir()

    def line(sample, answers):
        rows = [{"length": 4096, "depth": d, "sample": sample, "key": "21055", "answer": a[0],
                 "correct": a[0] == "21055", **({"greedy_answer": a[1], "greedy_correct": a[1] == "21055"}
                                              if len(a) > 1 else {})} for d, a in zip((0.0, 1.0), answers)]
        return json.dumps({"id": f"x:{sample}", "rows": rows}) + "\n"

    (tmp_path / "passkey" / "trained-m-bfloat16-lead.jsonl").write_text(line(0, [("21055",), ("1",)]))
    (tmp_path / "passkey" / "trained-m-bfloat16-lead-beam4.jsonl").write_text(
        line(0, [("21055", "2"), ("21055", "3")]) + line(1, [("21055", "20155"), ("21055", "21055")]))
    args = types.SimpleNamespace(trained_model="runs/m/model", trained_dtype="bfloat16", task="passkey",
                                 cached=True, samples={4096: 2}, depths=2)
    greedy = grid.run_method("trained-greedy", args)
    assert [(r["sample"], r["answer"], r["correct"]) for r in greedy] == \
        [(0, "21055", True), (0, "1", False), (1, "20155", False), (1, "21055", True)]
    assert [r["answer"] for r in grid.run_method("trained", args)] == ["21055"] * 4
    assert len(grid.run_method("trained-greedy", args)) == 4  # adopted once, under the greedy id
    assert '"id": "x:1"' in (tmp_path / "passkey" / "trained-m-bfloat16-lead.jsonl").read_text()
    args.samples = {4096: 1}
    assert len(grid.run_method("trained-greedy", args)) == 2


def test_key_scores_put_the_key_and_its_best_rival_on_the_answers_scale(tiny):
    """key_lp is the key's summed log-probability over the reads per token (its end of turn counted),
    as runtime.ranking ranks answers; rival_lp the likeliest candidate that is not right, taken from
    the weighed totals, or scored when answer_ids left it unscored (a lone candidate)."""
    from comet_models.runtime import feed, score

    model, tok = tiny
    ans = Answerer(model, tok, "comet", max_new_tokens=4, reads=2)
    prefix, suffix = ans.frame("What is the pass key?")
    states = [feed(model, st, ans.encode(DOC[:900])) for st in ans.open(prefix)]
    key, wrong, longer = ans.encode("12345"), ans.encode("99999"), ans.encode("12345 at noon")

    def slow(ids):  # one read at a time, straight from runtime.score
        return sum(score(model, st, suffix, ids, 12, stop=ans.stop) for st in states) / (len(ids) + 1)

    right = lambda text: "12345" in text  # noqa: E731
    got = ans.key_scores(states, suffix, "12345", right, 12, ([wrong, longer], [-3.0, -1.0]))
    assert got["key_lp"] == pytest.approx(slow(key), abs=1e-4) and got["key_lp"] < 0
    # a weighed key is not scored again: its weighed total is taken
    weighed = ([key, wrong, longer], [-50.0, -3.0, -1.0])
    got = ans.key_scores(states, suffix, "12345", right, 12, weighed)
    assert got["key_lp"] == pytest.approx(-50.0 / (len(key) + 1), abs=1e-4)
    assert got["rival_lp"] == pytest.approx(-3.0 / (len(wrong) + 1), abs=1e-4)  # "12345 at noon" is right
    # a lone candidate comes unscored
    assert ans.key_scores(states, suffix, "12345", right, 12, ([wrong], None))["rival_lp"] == pytest.approx(slow(wrong), abs=1e-4)
    # nothing wrong was weighed
    assert ans.key_scores(states, suffix, "12345", right, 12, ([key], None))["rival_lp"] is None
