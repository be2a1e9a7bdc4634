"""Speech-transcript corpora: real speech (../shared/realmedia) with its known transcript, as a manifest of
audio URLs/paths + text -> download -> audio -> align (energy fallback; forced with a checkpoint) ->
quantize -> shard: speech units, word times and text tokens, vision absent."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mmdata.manifests.normalize import load_manifest
from mmdata.manifests.table import import_manifest
from mmdata.media.config import AudioConfig, FramesConfig
from mmdata.pipelines.align import AlignConfig, AlignStage
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.download import DownloadConfig, DownloadStage
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.quantize import QuantizeConfig, QuantizeStage
from mmdata.shards.build import ShardConfig, build_shards
from mmdata.testing.server import MediaServer
from mmdata.testing.workdirs import copy_work
from mmdata.tokenizers import load_tokenizers
from mmdata.tokenizers.fit import fit_speech, fit_text
from mmdata.tokenizers.speech import SpeechFitConfig
from mmdata.tokenizers.text import TextFitConfig
from mmdata.transcripts.text import normalize, split_words
from mmdata.workdir import WorkDir
from tests.dual.conftest import read_webdataset, run_stages

LIBRI = "lhotse_librispeech_2412-153948-0000.flac"
JFK = "whisper_jfk.flac"
TRANSCRIPTS = {  # from ../shared/realmedia/README.txt
    LIBRI: "IF THE READER WILL EXCUSE ME I WILL SAY NOTHING OF MY ANTECEDENTS NOR OF THE CIRCUMSTANCES WHICH "
           "LED ME TO LEAVE MY NATIVE COUNTRY THE NARRATIVE WOULD BE TEDIOUS TO HIM AND PAINFUL TO MYSELF",
    JFK: "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for "
         "your country.",
}
DURATIONS = {LIBRI: 11.66, JFK: 11.0}
KEYS = {LIBRI: "2412-153948-0000_full", JFK: "jfk_full"}
K = 12


def test_speech_list_shapes(tmp_path):
    """Common Voice TSV (path, sentence), NeMo JSONL (audio_filepath, text, duration), a CSV of audio URLs:
    kind audio from the extension, the transcript in `text`."""
    (tmp_path / "cv.tsv").write_text("client_id\tpath\tsentence\tup_votes\n"
                                     "c1\tclips/cv_1.mp3\tHello there.\t2\nc2\tclips/cv_2.mp3\tGood bye.\t3\n")
    (tmp_path / "nemo.jsonl").write_text(
        json.dumps({"audio_filepath": "/data/a.wav", "text": "hello there", "duration": 1.5}) + "\n")
    (tmp_path / "urls.csv").write_text("id,audio_url,transcript\nu1,https://x.example.com/get?f=u1.opus,hi\n"
                                       "u2,https://x.example.com/u2.m4a,ho\n")
    cv = load_manifest(tmp_path / "cv.tsv")
    assert [(c.kind, c.text, c.url) for c in cv] == [("audio", "Hello there.", str(tmp_path / "clips/cv_1.mp3")),
                                                      ("audio", "Good bye.", str(tmp_path / "clips/cv_2.mp3"))]
    nemo = load_manifest(tmp_path / "nemo.jsonl")[0]
    assert (nemo.kind, nemo.text, nemo.url, nemo.caption) == ("audio", "hello there", "/data/a.wav", None)
    urls = load_manifest(tmp_path / "urls.csv")
    # only the URL's path counts: `get?f=u1.opus` says nothing, the download stage asks the server
    assert [(c.key, c.kind, c.text) for c in urls] == [("u1_full", "video", "hi"), ("u2_full", "audio", "ho")]


@pytest.fixture(scope="module")
def speech_corpus(realmedia, tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    served = root / "served"
    served.mkdir()
    shutil.copyfile(realmedia / LIBRI, served / "2412-153948-0000.flac")
    (root / "local").mkdir()
    shutil.copyfile(realmedia / JFK, root / "local" / "jfk.flac")
    with MediaServer(served) as srv:
        manifest = root / "speech.csv"  # one row by URL, one by a path relative to the manifest
        manifest.write_text(f'id,audio_url,text\n2412-153948-0000,{srv.url("2412-153948-0000.flac")},'
                            f'{TRANSCRIPTS[LIBRI]}\njfk,local/jfk.flac,"{TRANSCRIPTS[JFK]}"\n')
        work = WorkDir(root / "work")
        import_manifest(work, manifest, chunk_size=8)
        summaries = run_stages(work, DownloadStage(DownloadConfig(allow_local=True, retries=0, timeout_s=10)))
    summaries |= run_stages(work, FramesStage(FramesConfig(frames=4)), AudioStage(AudioConfig()), AlignStage())
    tok = root / "tokenizers"
    fit_text(work, tok, TextFitConfig(vocab_size=300, min_frequency=1))
    fit_speech(work, tok, SpeechFitConfig(k=K, iters=5, max_frames=4000, device="cpu"))
    summaries |= run_stages(work, QuantizeStage(QuantizeConfig(tokenizers=str(tok), device="cpu")))
    out = root / "shards"
    build_shards(work, out, ShardConfig(tokenizers=str(tok), keep=("audio",), prefix="speech"), progress=False)
    return work, tok, out, summaries


def test_every_stage_ok_and_vision_absent(speech_corpus):
    work, _, _, summaries = speech_corpus
    assert {name: (s.ok, s.failed) for name, s in summaries.items()} == {
        name: (2, 0) for name in ("download", "frames", "audio", "align", "quantize")}
    for name, key in KEYS.items():
        dl = work.meta("download", key.rsplit("_", 1)[0])
        assert dl["kind"] == "audio" and dl["probe"]["has_video"] is False
        assert work.meta("frames", key) == {"present": False, "reason": "audio_source", "files": [], "times": []}
        audio = work.meta("audio", key)
        assert audio["present"] and audio["sample_rate"] == 16000
        assert audio["duration_s"] == pytest.approx(DURATIONS[name], abs=0.02)
        assert audio["num_samples"] == pytest.approx(DURATIONS[name] * 16000, abs=320)


def test_words_follow_the_transcript(speech_corpus):
    work, _, _, _ = speech_corpus
    for name, key in KEYS.items():
        align = work.meta("align", key)
        words = align["words"]
        assert align["present"] and align["source"] == "manifest_text" and align["method"] == "vad"
        assert [w["w"] for w in words] == split_words(normalize(TRANSCRIPTS[name])[0])
        assert align["text"] == " ".join(w["w"] for w in words) and align["timing"] == "vad_interpolated"
        assert all(0 <= a["start"] < a["end"] <= b["start"] + 1e-6 for a, b in zip(words, words[1:]))
        assert words[-1]["end"] <= DURATIONS[name] + 0.01
    # JFK's "Americans" is said around t = 1.8 s; spreading words over the voiced audio lands near it
    americans = next(w for w in work.meta("align", KEYS[JFK])["words"] if w["w"].startswith("Americans"))
    assert americans["start"] == pytest.approx(1.8, abs=0.5)


def test_units_and_text_tokens_in_the_shards(speech_corpus):
    work, tok, out, _ = speech_corpus
    toks = load_tokenizers(tok, device="cpu")
    samples = read_webdataset(out)
    assert sorted(samples) == sorted(KEYS.values())
    for name, key in KEYS.items():
        s = samples[key]
        meta = s["json"]
        assert meta["modalities"] == ["speech", "language"] and meta["kind"] == "audio"
        assert s["fields"] == ["flac", "json", "stok.npy", "ttok.npy", "txt"]  # no vtok.npy, no frames
        n = work.meta("audio", key)["num_samples"]
        stok = s["stok.npy"]
        assert stok.dtype == np.uint16 and stok.shape == (n // 320,) and stok.max() < K  # 50 Hz units
        assert len(np.unique(stok)) > K // 2  # real speech uses most units
        assert meta["stok_rate_hz"] == 50.0 and meta["audio_sample_rate"] == 16000
        assert meta["frame_times"] == [] and meta["frame_size"] is None
        assert meta["duration_s"] == pytest.approx(DURATIONS[name], abs=0.02)
        assert s["txt"] == work.meta("align", key)["text"]
        assert s["ttok.npy"].dtype == np.int32 and toks["text"].decode(s["ttok.npy"]).strip() == s["txt"]
        assert [w["w"] for w in meta["words"]] == s["txt"].split()
        assert s["raw"]["flac"] == (work.item_dir("audio", key) / "audio.flac").read_bytes()


def test_forced_alignment_path(speech_corpus, tmp_path):
    """With a checkpoint (here a tiny randomly initialised wav2vec2) the manifest text is force-aligned."""
    import torch
    import torchaudio

    from tests.transcripts.test_aligners import TINY

    work = speech_corpus[0]
    copy = copy_work(work, tmp_path / "work", drop=("align", "quantize"))
    torch.manual_seed(0)
    params = {**torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H._params, **TINY}
    torch.save(torchaudio.models.wav2vec2_model(**params).state_dict(), tmp_path / "tiny.pt")
    summary = run_stages(copy, AlignStage(AlignConfig(checkpoint=str(tmp_path / "tiny.pt"), forced_params=TINY)))
    assert summary["align"].ok == 2
    for name, key in KEYS.items():
        align = copy.meta("align", key)
        assert align["method"] == "forced" and align["timing"] == "forced"
        assert [w["w"] for w in align["words"]] == [w["w"] for w in work.meta("align", key)["words"]]
        assert all(a["start"] <= a["end"] <= b["start"] + 1e-6 for a, b in zip(align["words"], align["words"][1:]))
        assert align["words"][-1]["end"] <= DURATIONS[name] + 0.02
