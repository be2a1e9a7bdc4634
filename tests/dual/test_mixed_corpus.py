"""One manifest, rows of every kind: image-caption pairs, a speech-transcript pair, a narrated video without
text and tri-modal clips, built by `mmdata run`'s pipeline with the same stages and read back with plain
webdataset. The kind of each row comes from its URL, a `kind` column or the server's Content-Type."""
from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmdata.config import build_config
from mmdata.manifests.normalize import load_manifest
from mmdata.media.config import build_media_config
from mmdata.pipelines.download import DownloadConfig
from mmdata.pipelines.pipeline import DEFAULT_STAGES, PipelineConfig, run_pipeline
from mmdata.shards.stats import corpus_stats
from mmdata.testing.media import speak
from mmdata.testing.server import MediaServer
from mmdata.tokenizers import load_tokenizer_set, load_tokenizers
from mmdata.tokenizers.speech import SpeechFitConfig
from mmdata.tokenizers.text import TextFitConfig
from mmdata.tokenizers.vision import VisionFitConfig
from mmdata.workdir import WorkDir
from tests.dual.conftest import narrated_video, picture, read_webdataset, save_image

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEECH_TEXT = "the quick brown fox jumps over the lazy dog"
VOICE_TEXT = "she sells sea shells by the sea shore"
TRI_CUES = [(0.2, 1.3, "one two three"), (1.6, 2.8, "four five six")]
PIPELINE = {
    "manifest": "mixed.jsonl", "work": "work", "out": "shards", "chunk_size": 4,
    "download": {"allow_local": True, "timeout_s": 10, "retries": 0},
    "frames": {"frames": 4, "size": 224}, "audio": {}, "align": {},
    "tokenizers": {"text": {"vocab_size": 300, "min_frequency": 1},
                   "speech": {"k": 12, "max_frames": 4000, "iters": 5, "device": "cpu"},
                   "vision": {"k": 16, "max_patches": 2000, "iters": 5, "pca_dim": 16, "device": "cpu"}},
    "quantize": {"device": "cpu"}, "shard": {"prefix": "mixed", "max_samples": 4},
}


def _vtt(cues) -> str:
    ts = lambda t: f"00:00:{t:06.3f}"  # noqa: E731
    return "WEBVTT\n\n" + "\n\n".join(f"{ts(a)} --> {ts(b)}\n{text}" for a, b, text in cues) + "\n"


def _serve(folder: Path) -> dict[str, str]:
    folder.mkdir()
    save_image(picture((320, 240), 11), folder / "boat.jpg")
    save_image(picture((240, 240), 12), folder / "photo")  # no extension, served as octet-stream
    save_image(picture((300, 200), 13), folder / "img")  # no extension, served as image/jpeg
    speak(SPEECH_TEXT, folder / "speech.wav", speed_wpm=180)
    speak(VOICE_TEXT, folder / "voice", speed_wpm=180)  # no extension, served as audio/wav
    narrated_video(folder / "narration.mp4", "this video has a voice and no text at all", folder)
    tri_s = narrated_video(folder / "tri.mp4", "one two three four five six seven eight nine ten", folder, wpm=150)
    assert tri_s > 3.0  # both clips lie inside the video
    (folder / "tri.vtt").write_text(_vtt(TRI_CUES))
    return {"img": "image/jpeg", "voice": "audio/wav"}


def _rows(url) -> list[dict]:
    return [
        {"url": url("boat.jpg"), "caption": "a red boat on a calm lake"},
        {"url": url("photo?id=7"), "kind": "image", "caption": "a photo named by a kind column"},
        {"url": url("img?id=3"), "caption": "a picture found out by its content type"},
        {"url": url("speech.wav"), "text": SPEECH_TEXT},
        {"url": url("voice?id=5"), "text": VOICE_TEXT},
        {"url": url("narration.mp4")},
        {"url": url("tri.mp4"), "start": 0.0, "end": 1.5, "subtitles": url("tri.vtt")},
        {"url": url("tri.mp4"), "start": 1.5, "end": 3.0, "subtitles": url("tri.vtt")},
    ]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    types = _serve(root / "served")
    with MediaServer(root / "served", content_types=types) as srv:
        rows = _rows(srv.url)
        (root / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (root / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE))
        results = run_pipeline(PipelineConfig.from_yaml(root / "pipeline.yaml", {"progress": False}))
        counts = dict(srv.counts)
    keys = {name: next(c.key for c in WorkDir(root / "work").clips() if c.url == srv.url(name))
            for name in ("boat.jpg", "photo?id=7", "img?id=3", "speech.wav", "voice?id=5", "narration.mp4")}
    tri = sorted(c.key for c in WorkDir(root / "work").clips() if c.url == srv.url("tri.mp4"))
    return root, results, counts, keys, tri


def test_every_row_goes_through(mixed):
    root, results, counts, keys, tri = mixed
    assert {r.stage: r.failed for r in results} == {s: 0 for s in (
        "download", "frames", "audio", "align", "tokenizers", "quantize", "shard")}
    assert {r.stage: r.ok for r in results}["shard"] == 8
    work = WorkDir(root / "work")
    kinds = {name: (work.meta("download", source_id_of(work, key))["kind"],
                    work.meta("download", source_id_of(work, key))["kind_from"]) for name, key in keys.items()}
    assert kinds == {"boat.jpg": ("image", "manifest"), "photo?id=7": ("image", "manifest"),
                     "img?id=3": ("image", "content_type"), "speech.wav": ("audio", "manifest"),
                     "voice?id=5": ("audio", "content_type"), "narration.mp4": ("video", "manifest")}
    # only links with neither an extension nor a kind column were asked for their Content-Type; once they
    # said image/audio they were fetched directly (one GET, no yt-dlp sniffing)
    assert sorted(k for k in counts if k.startswith("HEAD")) == ["HEAD /img?id=3", "HEAD /voice?id=5"]
    assert counts["/img?id=3"] == counts["/voice?id=5"] == counts["/tri.mp4"] == 1


def source_id_of(work: WorkDir, key: str) -> str:
    return next(c.video_id for c in work.clips() if c.key == key)


def test_samples_read_back_with_plain_webdataset(mixed):
    root, _, _, keys, tri = mixed
    samples = read_webdataset(root / "shards")
    assert len(samples) == 8 and len(list((root / "shards").glob("*.tar"))) == 2
    toks = load_tokenizers(root / "work" / "tokenizers", device="cpu")
    for name in ("boat.jpg", "photo?id=7", "img?id=3"):
        s = samples[keys[name]]
        assert s["json"]["modalities"] == ["vision", "language"] and s["json"]["kind"] == "image"
        assert s["vtok.npy"].shape == (1, 14, 14) and "stok.npy" not in s
        assert toks["text"].decode(s["ttok.npy"]).strip() == s["txt"] == s["json"]["caption"]
    for name, text in (("speech.wav", SPEECH_TEXT), ("voice?id=5", VOICE_TEXT)):
        sp = samples[keys[name]]
        assert sp["json"]["modalities"] == ["speech", "language"] and sp["json"]["kind"] == "audio"
        assert "vtok.npy" not in sp and sp["stok.npy"].shape == (round(sp["json"]["duration_s"] * 16000) // 320,)
        assert sp["txt"] == text and [w["w"] for w in sp["json"]["words"]] == text.split()
        assert sp["json"]["timing"] == "vad_interpolated" and toks["text"].decode(sp["ttok.npy"]).strip() == text
    narr = samples[keys["narration.mp4"]]
    assert narr["json"]["modalities"] == ["vision", "speech"] and narr["json"]["kind"] == "video"
    assert narr["fields"] == ["json", "stok.npy", "txt", "vtok.npy"] and narr["txt"] == ""
    assert narr["vtok.npy"].shape == (4, 14, 14) and narr["json"]["words"] == []
    assert narr["stok.npy"].shape == (round(narr["json"]["duration_s"] * 16000) // 320,)
    for key, (_, _, text) in zip(tri, TRI_CUES):
        s = samples[key]
        assert s["json"]["modalities"] == ["vision", "speech", "language"]
        assert s["vtok.npy"].shape == (4, 14, 14) and s["stok.npy"].shape == (75,)  # 1.5 s at 50 Hz
        assert s["txt"] == text and toks["text"].decode(s["ttok.npy"]).strip() == text
        assert all(0 <= w["start"] <= w["end"] <= 1.5 + 0.01 for w in s["json"]["words"])
    hashes = {n: c["hash"] for n, c in load_tokenizer_set(root / "work" / "tokenizers").items()}
    assert all(s["json"]["tokenizers"] == {m: hashes[m] for m in s["json"]["tokenizers"]} for s in samples.values())


def test_streamed_shards_are_what_mmdata_shard_writes(mixed, tmp_path):
    """`mmdata run` shards each chunk as its quantize finishes; `mmdata shard` afterwards writes the same bytes."""
    from mmdata.shards.build import ShardConfig, build_shards

    root = mixed[0]
    cfg = ShardConfig(tokenizers=str(root / "work" / "tokenizers"), **PIPELINE["shard"])
    build_shards(WorkDir(root / "work"), tmp_path / "again", cfg, progress=False)
    files = lambda out: {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}  # noqa: E731
    streamed = files(root / "shards")
    assert streamed == files(tmp_path / "again")
    assert sorted(n for n in streamed if n.endswith(".tar")) == ["mixed-000000-000000.tar", "mixed-000001-000000.tar"]
    again = build_shards(WorkDir(root / "work"), root / "shards", cfg, progress=False)  # in place: all up to date
    assert (again.chunks_run, again.chunks_skipped) == (0, 2) and files(root / "shards") == streamed


def test_stats_count_by_modality_combination(mixed):
    root = mixed[0]
    stats = corpus_stats(root / "shards", progress=False)
    assert dict(stats.combos) == {"vision+language": 3, "speech+language": 2, "vision+speech": 1,
                                  "vision+speech+language": 2}
    proc = subprocess.run([sys.executable, "-m", "mmdata.cli", "stats", str(root / "shards"), "--no-progress"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    assert ["vision+language", "3"] in lines and ["vision+speech+language", "2"] in lines
    assert ["speech+language", "2"] in lines and ["vision+speech", "1"] in lines


def test_one_trainer_batch_mixes_the_kinds(mixed):
    from mmdata.train.config import resolve_config
    from mmdata.train.data import TrainLoader, resolve_vocab

    root, _, _, _, _ = mixed
    tars = "::".join(str(p) for p in sorted((root / "shards").glob("*.tar")))
    cfg = resolve_vocab(resolve_config({"preset": "tiny", "data": [tars], "out": str(root / "run"),
                                        "batch_size": 8, "steps": 1}))
    assert (cfg.model.vocab_text, cfg.model.vocab_speech, cfg.model.vocab_vision) == (300, 12, 16)
    samples = read_webdataset(root / "shards")
    mixes = set()
    for batch in itertools.islice(TrainLoader(cfg), 4):
        for key, row in zip(batch.keys, batch.present.tolist()):
            assert row == [m in samples[key]["json"]["modalities"] for m in ("vision", "speech", "language")]
        mixes |= {tuple(r) for r in batch.present.tolist()}
    assert mixes == {(True, False, True), (False, True, True), (True, True, False), (True, True, True)}


def test_example_manifests_and_pipeline_parse():
    """The examples are shapes to copy (example.com URLs): they must still read as manifests and a pipeline."""
    kinds = {}
    for name in ("image_captions.tsv", "speech_transcripts.csv", "mixed.jsonl"):
        kinds[name] = sorted({c.kind for c in load_manifest(EXAMPLES / name)})
    assert kinds == {"image_captions.tsv": ["image", "video"], "speech_transcripts.csv": ["audio"],
                     "mixed.jsonl": ["audio", "image", "video"]}
    assert all(c.text for c in load_manifest(EXAMPLES / "speech_transcripts.csv"))
    cfg = PipelineConfig.from_yaml(EXAMPLES / "dual.yaml")  # refuses keys `mmdata run` does not know
    assert cfg.manifest == EXAMPLES / "mixed.jsonl" and cfg.stages == DEFAULT_STAGES
    assert build_config(DownloadConfig, {}, cfg.sections["download"]).min_image_side == 64
    assert build_media_config("frames", cfg.sections["frames"], {}, cfg.preset).size == 224
    for kind, cls in (("text", TextFitConfig), ("speech", SpeechFitConfig), ("vision", VisionFitConfig)):
        build_config(cls, {}, cfg.sections["tokenizers"][kind])


def test_corpora_built_apart_share_one_tokenizer_set_and_mix_in_training(tmp_path):
    """An image-caption corpus and a speech-transcript corpus, each its own `mmdata run`, pointed at one
    tokenizer set: the first run fits text and vision, the second keeps them and adds speech; the trainer
    then reads both as one mixed run."""
    from mmdata.train.config import resolve_config
    from mmdata.train.data import TrainLoader, resolve_vocab

    served = tmp_path / "served"
    served.mkdir()
    for i in range(3):
        save_image(picture((200 + 20 * i, 160), 30 + i), served / f"p{i}.jpg")
    speak(SPEECH_TEXT, served / "a.wav", speed_wpm=180)
    speak(VOICE_TEXT, served / "b.wav", speed_wpm=180)
    manifests = {"captions.tsv": "".join(f"picture number {i}\t{{u}}p{i}.jpg\n" for i in range(3)),
                 "speech.csv": f"url,text\n{{u}}a.wav,{SPEECH_TEXT}\n{{u}}b.wav,{VOICE_TEXT}\n"}
    with MediaServer(served) as srv:
        notes = {}
        for name, text in manifests.items():
            corpus = Path(name).stem
            (tmp_path / name).write_text(text.format(u=srv.url("")))
            spec = {**PIPELINE, "manifest": name, "work": f"work-{corpus}", "out": f"shards-{corpus}",
                    "shard": {"prefix": corpus}, "tokenizers": {**PIPELINE["tokenizers"], "dir": "shared-tok"}}
            (tmp_path / f"{corpus}.yaml").write_text(yaml.safe_dump(spec))
            results = run_pipeline(PipelineConfig.from_yaml(tmp_path / f"{corpus}.yaml", {"progress": False}))
            assert all(r.failed == 0 for r in results)
            notes[corpus] = next(r.note for r in results if r.stage == "tokenizers")
    assert re.search(r"fitted text \(vocab \d+\), vision \(vocab 16\) on \d+ clips of \d+ chunk\(s\); kept none; none for speech", notes["captions"])
    assert "fitted speech (vocab 12) on 2 clips of 1 chunk(s); kept text, vision" in notes["speech"]
    vocab = {n: c["vocab_size"] for n, c in load_tokenizer_set(tmp_path / "shared-tok").items()}
    data = ["::".join(str(p) for p in sorted((tmp_path / f"shards-{c}").glob("*.tar"))) for c in ("captions", "speech")]
    cfg = resolve_vocab(resolve_config({"preset": "tiny", "data": [{"shards": d, "weight": 1.0} for d in data],
                                        "out": str(tmp_path / "run"), "batch_size": 5, "steps": 1}))
    assert (cfg.model.vocab_text, cfg.model.vocab_speech, cfg.model.vocab_vision) == (vocab["text"], 12, 16)
    mixes = set()
    for batch in itertools.islice(TrainLoader(cfg), 3):
        mixes |= {tuple(r) for r in batch.present.tolist()}
    assert mixes == {(True, False, True), (False, True, True)}
