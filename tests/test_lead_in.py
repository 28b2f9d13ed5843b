"""The lead-in (runtime.open_state): a document longer than a chunk is read after one chunk of other
prose, exactly as if prefix + lead-in + document were one stream; shorter ones as without it."""
from __future__ import annotations

import pytest
import torch

from comet_models.runtime import feed, final_chunk, generate, lead_in_ids, new_state, open_state
from comet_models.state import MemoryState
from tests.test_read_support import comet, one_thread, tiny_model, write_text  # noqa: F401 (fixtures)
from tests.tiny import comet_model, sample

C = 16  # tests.tiny's chunk size


def _parts(seed=0, doc_len=3 * C + 5):
    ids = sample(4 + (C - 4) + doc_len, seed=seed)[0][0].tolist()
    return ids[:4], ids[4:C], ids[C:]  # prefix (4 tokens), lead-in (fills the chunk), document


def test_lead_in_read_equals_the_explicit_stream_in_any_pieces():
    model = comet_model("qwen3")
    prefix, lead, doc = _parts()
    explicit = feed(model, new_state(model), prefix + lead + doc)
    opened = open_state(model, prefix, lead)
    assert (opened.chunks, opened.pending, opened.lead) == (0, prefix, lead)  # nothing closed yet
    whole = feed(model, opened, doc)
    pieces = opened
    for a in range(0, len(doc), 5):
        pieces = feed(model, pieces, doc[a:a + 5])
    for st in (whole, pieces):
        assert st.sha256() == explicit.sha256()
        assert (st.chunks, st.pending, st.lead) == (explicit.chunks, explicit.pending, [])
    assert whole.tokens == len(prefix) + len(doc)  # the lead-in is not counted as input
    # ...and the comparison can fail: without the lead-in the memory differs
    assert feed(model, new_state(model), prefix + doc).sha256() != explicit.sha256()


def test_a_document_that_fits_the_first_chunk_is_read_without_it():
    model = comet_model("llama")
    prefix, lead, doc = _parts(seed=1)
    short, prompt = doc[:6], [7, 8, 9]
    st = feed(model, open_state(model, prefix, lead), short)
    plain = feed(model, new_state(model), prefix + short)
    answer_from, text = final_chunk(model, st, prompt, max_new_tokens=2)
    assert (answer_from.chunks, text) == (0, prefix + short + prompt)
    assert list(generate(model, st, prompt, max_new_tokens=3)) == list(generate(model, plain, prompt, max_new_tokens=3))


@pytest.mark.parametrize("max_new_tokens", [1, 8])
def test_a_document_that_overflows_only_with_its_question_closes_the_lead_in_first(max_new_tokens):
    """The first chunk would close in final_chunk, not in feed: the lead-in still comes first, whole."""
    model = comet_model("llama")
    prefix, lead, doc = _parts(seed=2)
    doc, prompt = doc[:C - len(prefix) - 2], [7, 8, 9, 10]  # prefix + doc fit; with the prompt they do not
    st = feed(model, open_state(model, prefix, lead), doc)
    assert st.chunks == 0 and st.lead == lead
    answer_from, text = final_chunk(model, st, prompt, max_new_tokens=max_new_tokens)
    explicit = feed(model, new_state(model), prefix + lead + doc)  # chunk 0 closed, doc pending
    want_from, want_text = final_chunk(model, explicit, prompt, max_new_tokens=max_new_tokens)
    assert answer_from.chunks == want_from.chunks >= 1 and text == want_text
    # (the memories answered from; final_chunk leaves `pending` as it found it, the text is above)
    assert torch.equal(answer_from.global_state, want_from.global_state)
    assert torch.equal(answer_from.temp_memory, want_from.temp_memory)


def test_a_state_file_keeps_its_lead_in_and_old_states_their_digest(tmp_path):
    model = comet_model("llama")
    prefix, lead, doc = _parts(seed=3)
    opened = feed(model, open_state(model, prefix, lead), doc[:5])
    opened.save(tmp_path / "a.safetensors", chunk_size=C)
    back = MemoryState.load(tmp_path / "a.safetensors")
    assert (back.lead, back.pending, back.sha256()) == (lead, opened.pending, opened.sha256())
    assert feed(model, back, doc[5:]).sha256() == feed(model, new_state(model), prefix + lead + doc).sha256()
    # a state without a lead-in writes no lead tensor: its digest is the one it always had
    plain = feed(model, new_state(model), prefix + doc[:5])
    assert "lead" not in plain._tensors(C) and plain.sha256() != opened.sha256()


def test_a_lead_in_that_does_not_fill_the_first_chunk_is_not_used():
    model = comet_model("llama")
    prefix, lead, doc = _parts(seed=4)
    st = open_state(model, prefix, lead[:-1])
    assert st.lead == []
    assert feed(model, st, doc).sha256() == feed(model, new_state(model), prefix + doc).sha256()


def test_lead_in_text_gives_exactly_the_tokens_asked_for(smollm2_tokenizer):
    tok = smollm2_tokenizer
    ids = lead_in_ids(tok, 232)
    assert len(ids) == 232 and tok.decode(ids).lstrip().startswith("Stately, plump Buck Mulligan")
    many = lead_in_ids(tok, 20000)  # longer than the text: it repeats
    assert len(many) == 20000 and many[:232] == ids
    assert lead_in_ids(tok, 0) == []


def test_eval_reads_with_the_lead_in_and_tags_its_results(tiny_comet_folder):
    from comet_cli.eval.methods import Answerer
    from comet_models.convert import load_comet

    model, tok = load_comet(tiny_comet_folder)
    ans = Answerer(model, tok, "comet", max_new_tokens=3, lead_in=True)
    prefix, _ = ans.frame("Q?")
    st = ans.open(prefix)
    assert len(st.lead) == model.comet_config.chunk_size - len(prefix)
    assert st.lead == lead_in_ids(tok, len(st.lead))
    assert ans.run_tag == "comet+lead" and Answerer(model, tok, "comet").run_tag == "comet"
    assert Answerer(model.to(torch.bfloat16), tok, "comet", lead_in=True).run_tag == "comet+lead@bfloat16"


def test_ask_with_the_lead_in_keeps_its_own_cached_state(comet, tiny_model, tmp_path):
    import json

    doc = write_text(tmp_path / "doc.txt", 120)
    ask = ("ask", doc, "Q?", "--model", tiny_model, "--json", "--max-new-tokens", "2")
    plain = json.loads(comet(*ask)[1])
    led, again = (json.loads(comet(*ask, "--lead-in")[1]) for _ in range(2))
    assert (plain["reused_state"], led["reused_state"], again["reused_state"]) == (False, False, True)
    assert led["state_file"] == again["state_file"] != plain["state_file"]
    assert led["state_sha256"] == again["state_sha256"] != plain["state_sha256"]
    assert led["tokens_read"] == plain["tokens_read"] and led["chunks"] >= plain["chunks"]
    assert json.loads(comet(*ask)[1])["reused_state"] is True  # the plain read's state is still there
