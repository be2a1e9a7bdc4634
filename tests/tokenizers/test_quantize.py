"""The quantize stage through the runner: files, dtypes, shapes, hashes, odd clips, determinism, Ray."""
import pickle

import numpy as np
import pytest

from mmdata.media_io import read_audio
from mmdata.pipelines.quantize import QuantizeConfig, QuantizeStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.testing.speech import spoken_corpus
from mmdata.testing.workdirs import copy_work, make_work, stage_files
from mmdata.tokenizers import load_tokenizer_set, load_tokenizers
from mmdata.tokenizers.fit import fit_speech, fit_text, fit_vision
from mmdata.tokenizers.speech import SpeechFitConfig
from mmdata.tokenizers.text import TextFitConfig
from mmdata.tokenizers.vision import VisionFitConfig
from mmdata.workdir import WorkDir
from tests.tokenizers.helpers import clip, commit, put_align, put_audio, put_frames, scene


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, espeak_cache):
    """A work folder with a full clip, an audio-only clip, an image-caption clip (two chunks), and a
    tokenizer set fitted on it in the test."""
    root = tmp_path_factory.mktemp("q")
    clips = [clip("full_0_2000"), clip("speech_0_2000", kind="audio"),
             clip("image_0_0", caption="a picture of a red boat", kind="image", chunk=1)]
    work = make_work(root / "work", clips)
    sp = spoken_corpus(["apple", "river", "sugar"], speeds=(150, 200), cache=espeak_cache)
    put_frames(work, "full_0_2000", [scene(k, size=(240, 320)) for k in range(3)])
    put_audio(work, "full_0_2000", sp.wav)
    put_align(work, "full_0_2000", "apple river sugar apple river sugar", sp.words)
    put_frames(work, "speech_0_2000", None)
    put_audio(work, "speech_0_2000", sp.wav[: 16000 + 100])
    put_align(work, "speech_0_2000", "apple river")
    put_frames(work, "image_0_0", [scene(9)])
    put_audio(work, "image_0_0", None)
    put_align(work, "image_0_0", None)
    tok = root / "tokenizers"
    fit_text(work, tok, TextFitConfig(vocab_size=280))
    fit_speech(work, tok, SpeechFitConfig(k=8, iters=5, device="cpu"))
    fit_vision(work, tok, VisionFitConfig(k=16, iters=5, pca_dim=16, max_patches=700, device="cpu"))
    return work, tok


def _copy_work(work: WorkDir, dst) -> WorkDir:
    return copy_work(work, dst, drop=("quantize",))


def _files(work: WorkDir) -> dict[str, bytes]:
    return {k: v for k, v in stage_files(work, "quantize").items() if k.endswith(".npy")}


def test_quantize_writes_tokens_for_every_clip(corpus, tmp_path):
    work = _copy_work(corpus[0], tmp_path / "w")
    tokdir = corpus[1]
    summary = run_stage(QuantizeStage(QuantizeConfig(tokenizers=str(tokdir))), work, RunnerConfig(progress=False))
    assert (summary.ok, summary.failed) == (3, 0)
    toks = load_tokenizers(tokdir, device="cpu")
    hashes = {n: c["hash"] for n, c in load_tokenizer_set(tokdir).items()}

    q = work.item_dir("quantize", "full_0_2000")
    vtok, stok, ttok = (np.load(q / f) for f in ("vtok.npy", "stok.npy", "ttok.npy"))
    assert vtok.dtype == np.uint16 and vtok.shape == (3, 14, 14)
    frames = [work.item_dir("frames", "full_0_2000") / f for f in work.meta("frames", "full_0_2000")["files"]]
    assert np.array_equal(vtok, toks["vision"].encode_files(frames))
    n = work.meta("audio", "full_0_2000")["num_samples"]
    assert stok.dtype == np.uint16 and stok.shape == (n // 320,)  # 50 Hz
    assert np.array_equal(stok, toks["speech"].encode(read_audio(work.item_dir("audio", "full_0_2000") / "audio.flac")))
    assert ttok.dtype == np.int32
    assert toks["text"].decode(ttok).strip() == "apple river sugar apple river sugar"
    meta = work.meta("quantize", "full_0_2000")
    assert meta["modalities"] == ["vision", "speech", "text"] and meta["tokenizers"] == hashes
    assert meta["rates"] == {"stok_hz": 50.0} and meta["shapes"]["vtok.npy"] == [3, 14, 14]

    sp = work.meta("quantize", "speech_0_2000")
    assert sp["modalities"] == ["speech", "text"] and sp["skipped"] == {"vision": "no video"}
    assert np.load(work.item_dir("quantize", "speech_0_2000") / "stok.npy").shape == (50,)  # 16100 samples
    im = work.meta("quantize", "image_0_0")
    assert im["modalities"] == ["vision", "text"] and im["skipped"] == {"speech": "no audio"}
    caption_ids = np.load(work.item_dir("quantize", "image_0_0") / "ttok.npy")
    assert toks["text"].decode(caption_ids).strip() == "a picture of a red boat"


def test_same_input_gives_the_same_token_bytes(corpus, tmp_path):
    runs = []
    for name in ("a", "b"):
        work = _copy_work(corpus[0], tmp_path / name)
        run_stage(QuantizeStage(QuantizeConfig(tokenizers=str(corpus[1]))), work, RunnerConfig(progress=False))
        runs.append(_files(work))
    assert runs[0] == runs[1] and len(runs[0]) == 7


def test_bad_clips_become_error_rows(corpus, tmp_path):
    work = _copy_work(corpus[0], tmp_path / "w")
    extra = [clip("badaudio_0_2000"), clip("noframes_0_2000"), clip("empty_0_2000")]
    from mmdata.manifests.table import write_clip_table

    write_clip_table(work, work.clips() + extra)
    put_frames(work, "badaudio_0_2000", None)
    commit(work, "audio", "badaudio_0_2000", {"present": True, "file": "audio.flac", "sample_rate": 16000},
           {"audio.flac": b"fLaC-not-really"})
    put_audio(work, "noframes_0_2000", np.zeros(3200, np.float32))  # the frames stage has no output for it
    put_frames(work, "empty_0_2000", None)
    put_audio(work, "empty_0_2000", None)
    summary = run_stage(QuantizeStage(QuantizeConfig(tokenizers=str(corpus[1]))), work, RunnerConfig(progress=False))
    rows = {r.key: r for r in read_all_status(work, "quantize")}
    assert (summary.ok, summary.failed) == (3, 3)
    assert rows["badaudio_0_2000"].reason == "corrupt_file" and "audio.flac" in rows["badaudio_0_2000"].detail
    assert rows["noframes_0_2000"].reason == "missing_frames"
    assert rows["empty_0_2000"].reason == "no_modality"


def test_resources_and_pickling():
    gpu = QuantizeStage(QuantizeConfig(tokenizers="t"))
    cpu = QuantizeStage(QuantizeConfig(tokenizers="t", device="cpu"))
    assert gpu.resources.gpus == 1.0 and cpu.resources.gpus == 0.0 and gpu.resources.cpus == 1.0
    gpu.toks = {"loaded": object()}  # as after setup(): models never travel to Ray workers
    clone = pickle.loads(pickle.dumps(gpu))
    assert clone.toks is None and clone.cfg == gpu.cfg and clone.resources == gpu.resources
    assert QuantizeConfig(tokenizers="t", memory_mb=2048).batch_frames >= 8


@pytest.mark.slow
def test_quantize_through_ray_matches_local(corpus, tmp_path, monkeypatch):
    """Ray actors (one per chunk here) load the tokenizers once; the stage asks for a GPU, the runner drops
    the request on this GPU-less embedded cluster, and the tokens are byte-identical to a local run."""
    # a `ray start` earlier on this machine leaves /tmp/ray/ray_current_cluster behind, and a bare
    # ray.init() would try to join that (dead) cluster: ask for a fresh embedded one
    monkeypatch.setenv("RAY_ADDRESS", "local")
    local = _copy_work(corpus[0], tmp_path / "local")
    ray_w = _copy_work(corpus[0], tmp_path / "ray")
    stage = QuantizeStage(QuantizeConfig(tokenizers=str(corpus[1])))
    run_stage(stage, local, RunnerConfig(progress=False))
    summary = run_stage(QuantizeStage(QuantizeConfig(tokenizers=str(corpus[1]))), ray_w,
                        RunnerConfig(executor="ray", progress=False))
    assert (summary.ok, summary.failed) == (3, 0)
    assert _files(ray_w) == _files(local)
