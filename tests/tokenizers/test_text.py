"""Text tokenizer: byte-level BPE trained on the work folder's transcripts, or an existing tokenizer.json."""
import json

import numpy as np
import pytest

from mmdata.errors import ConfigError
from mmdata.testing.workdirs import make_work
from mmdata.tokenizers import load_tokenizer_set, load_tokenizers
from mmdata.tokenizers.fit import clip_text, fit_text
from mmdata.tokenizers.text import MIN_VOCAB, TextFitConfig, TextTokenizer
from tests.tokenizers.helpers import clip, put_align

SENTENCES = [
    "ask not what your country can do for you",
    "ask what you can do for your country",
    "the quick brown fox jumps over the lazy dog",
    "a quick brown dog jumps over the lazy fox",
    "what you can do today is what you can do for your country",
]


@pytest.fixture
def text_work(tmp_path):
    clips = [clip(f"v{i}_0_2000") for i in range(len(SENTENCES))]
    clips.append(clip("cap_0_2000", caption="an image of a quick brown fox"))  # image-caption pair
    clips.append(clip("tr_0_2000", text="the manifest transcript of your country"))  # no align output
    clips.append(clip("none_0_2000"))  # nothing to read
    work = make_work(tmp_path / "work", clips)
    for i, s in enumerate(SENTENCES * 1):
        put_align(work, f"v{i}_0_2000", s, [])
    put_align(work, "cap_0_2000", None)  # language absent: falls back to the caption
    return work


def test_clip_text_prefers_align_then_transcript_then_caption(text_work):
    by_key = {c.key: c for c in text_work.clips()}
    assert clip_text(text_work, by_key["v0_0_2000"]) == SENTENCES[0]
    assert clip_text(text_work, by_key["cap_0_2000"]) == "an image of a quick brown fox"
    assert clip_text(text_work, by_key["tr_0_2000"]) == "the manifest transcript of your country"
    assert clip_text(text_work, by_key["none_0_2000"]) is None


def test_fit_text_from_work_folder_roundtrips_and_is_deterministic(text_work, tmp_path):
    cfg = TextFitConfig(vocab_size=300)
    a = fit_text(text_work, tmp_path / "tokA", cfg)
    b = fit_text(text_work, tmp_path / "tokB", cfg)
    assert a["hash"] == b["hash"]  # same transcripts, same tokenizer, same hash
    assert MIN_VOCAB <= a["vocab_size"] <= 300
    assert a["n_texts"] == 7  # 5 aligned + caption + manifest transcript
    tok = load_tokenizers(tmp_path / "tokA")["text"]
    ids = tok.encode("ask not what your country can do for you")
    assert ids.dtype == np.int32 and ids.max() < a["vocab_size"]
    assert tok.decode(ids).strip() == "ask not what your country can do for you"
    # frequent words became single merged tokens: far fewer ids than bytes
    assert len(ids) < 0.5 * len("ask not what your country can do for you")
    # byte-level: text never seen (another script, an emoji) still encodes and decodes
    odd = "naïve 東京 🙂"
    assert tok.decode(tok.encode(odd)).strip() == odd
    assert load_tokenizer_set(tmp_path / "tokA")["text"]["hash"] == a["hash"]


def test_from_existing_tokenizer_json_keeps_its_ids(text_work, tmp_path):
    trained = TextTokenizer.fit(SENTENCES, TextFitConfig(vocab_size=280))
    path = tmp_path / "tokenizer.json"
    path.write_text(trained.tok.to_str())
    cfg = fit_text(text_work, tmp_path / "tok", TextFitConfig(from_file=str(path)))
    assert cfg["kind"] == "pretrained"
    loaded = load_tokenizers(tmp_path / "tok")["text"]
    s = "the lazy dog can do"
    assert loaded.encode(s).tolist() == trained.encode(s).tolist()


def test_bad_inputs_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="vocab_size"):
        TextFitConfig(vocab_size=100)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        TextTokenizer.fit([], TextFitConfig(from_file=str(bad)))
    with pytest.raises(ConfigError, match="no transcript"):
        TextTokenizer.fit(["", "   "], TextFitConfig())


def test_edited_tokenizer_folder_is_refused(text_work, tmp_path):
    fit_text(text_work, tmp_path / "tok", TextFitConfig(vocab_size=280))
    p = tmp_path / "tok" / "text" / "tokenizer.json"
    data = json.loads(p.read_text())
    data["added_tokens"][0]["content"] = "<PAD>"
    p.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="modified after fitting"):
        load_tokenizer_set(tmp_path / "tok")
