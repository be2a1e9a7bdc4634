"""Batched quantize: a clip's tokens do not depend on what it is batched with; audio decodes in-process to
ffmpeg's samples; speech encoders see long clips in bounded windows."""

import numpy as np
import pytest

from mmdata.media_io import read_audio
from mmdata.pipelines.base import Stage
from mmdata.pipelines.quantize import QuantizeConfig, QuantizeStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.testing.media import audio_file, scene
from mmdata.testing.speech import flac_bytes
from mmdata.testing.workdirs import copy_work, make_work, replace_file, stage_files
from mmdata.tokenizers.fit import fit_speech, fit_vision
from mmdata.tokenizers.speech import SpeechFitConfig, SpeechTokenizer, make_speech_features
from mmdata.tokenizers.vision import PatchFeatures, VisionFitConfig, VisionTokenizer
from mmdata.workdir import WorkDir
from tests.tokenizers.helpers import clip, put_audio, put_frames


def _frames(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = scene(seed)
    return np.stack([np.clip(base.astype(int) + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
                     for _ in range(n)])


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """12 clips (odd frame counts, odd audio lengths, one without video, one with a corrupt frame) and
    tokenizers fitted on them."""
    root = tmp_path_factory.mktemp("batch")
    clips = [clip(f"c{i:02d}_0_2000") for i in range(12)]
    work = make_work(root / "work", clips)
    rng = np.random.default_rng(1)
    for i, c in enumerate(clips):
        put_frames(work, c.key, None if i == 3 else list(_frames(i, 1 + i % 4)))
        t = np.arange(8000 + 977 * i) / 16000
        put_audio(work, c.key, (0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.02 * rng.standard_normal(len(t)))
                  .astype(np.float32))
    tok = root / "tok"
    fit_speech(work, tok, SpeechFitConfig(k=16, iters=4, device="cpu"))
    fit_vision(work, tok, VisionFitConfig(k=32, iters=4, pca_dim=16, max_patches=2000, device="cpu"))
    replace_file(work, "frames", clips[7].key, "000000.jpg", b"\xff\xd8 not a jpeg")
    return work, tok


def _run(work: WorkDir, tok, dst, batch_clips: int):
    w = copy_work(work, dst)
    s = run_stage(QuantizeStage(QuantizeConfig(tokenizers=str(tok), device="cpu", batch_clips=batch_clips)), w,
                  RunnerConfig(progress=False, workers=1))
    files = stage_files(w, "quantize") | {f"{k}/meta": w.meta("quantize", k) for k in w.clip_keys()}
    rows = [(r.key, r.status, r.reason, r.detail.replace(str(w.root), "WORK")) for r in read_all_status(w, "quantize")]
    return s, files, rows


def test_batched_quantize_writes_the_bytes_of_one_clip_at_a_time(many, tmp_path):
    work, tok = many
    one = _run(work, tok, tmp_path / "one", 1)
    for b in (5, 32):
        s, files, rows = _run(work, tok, tmp_path / f"b{b}", b)
        assert (files, rows) == one[1:]
    assert (s.ok, s.failed, s.reasons) == (11, 1, {"corrupt_file": 1})  # the bad frame fails its clip alone
    vt = {k: v for k, v in files.items() if k.endswith("vtok.npy")}
    assert len(vt) == 10 and sum(k.endswith("stok.npy") for k in files) == 11  # c03 has no video


def test_vision_tokens_do_not_depend_on_the_batch():
    rng = np.random.default_rng(0)
    feats = PatchFeatures()
    frames = np.concatenate([_frames(s, 3) for s in range(4)])
    f = feats(frames)
    assert f.shape == (12, 196, 86) and np.array_equal(f[:3], feats(frames[:3]))
    tok = VisionTokenizer.fit(f.reshape(-1, 86), feats, VisionFitConfig(k=24, iters=3, pca_dim=12, max_patches=2352,
                                                                        device="cpu"))
    clips = [frames[0:1], frames[1:6], frames[6:6], frames[6:12]]
    together = tok.encode_batch(clips, batch_frames=4)
    assert [t.shape for t in together] == [(1, 14, 14), (5, 14, 14), (0, 14, 14), (6, 14, 14)]
    for c, t in zip(clips, together):
        assert np.array_equal(t, tok.encode_frames(c))
    shuffled = rng.permutation(12)
    assert np.array_equal(tok.encode_frames(frames[shuffled]), tok.encode_frames(frames)[shuffled])


def test_patch_features_match_the_patch_by_patch_definition():
    """The whole-frame computation against the definition: each 16x16 patch alone, edges replicated."""
    import torch
    import torch.nn.functional as F

    frames = _frames(5, 2)
    got = PatchFeatures()(frames).reshape(2, 14, 14, 86)
    x = torch.from_numpy(frames).float() / 255
    for b, (r, c) in [(0, (0, 0)), (1, (13, 13)), (0, (6, 9)), (1, (13, 0))]:
        p = x[b, 16 * r:16 * r + 16, 16 * c:16 * c + 16].permute(2, 0, 1)  # [3, 16, 16]
        pooled = p.reshape(3, 4, 4, 4, 4).mean((2, 4)).reshape(48)
        stats = torch.cat([p.mean((1, 2)), p.std((1, 2))])
        g = F.pad((0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
        gx, gy = g[1:-1, 2:] - g[1:-1, :-2], g[2:, 1:-1] - g[:-2, 1:-1]
        bins = (torch.remainder(torch.atan2(gy, gx), torch.pi) * (8 / torch.pi)).long().clamp(0, 7)
        mag = torch.sqrt(gx * gx + gy * gy)
        hist = torch.zeros(2, 2, 8)
        for i in range(16):
            for j in range(16):
                hist[i // 8, j // 8, bins[i, j]] += mag[i, j]
        want = torch.cat([pooled, stats, hist.reshape(32).sqrt()]).numpy()
        np.testing.assert_allclose(got[b, r, c], want, rtol=1e-5, atol=1e-5)


def test_speech_units_do_not_depend_on_the_batch():
    rng = np.random.default_rng(0)
    wavs = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 319, 5000, 48000)]
    feats = make_speech_features("mfcc")
    tok = SpeechTokenizer.fit(np.concatenate([feats(w) for w in wavs]), feats, SpeechFitConfig(k=8, iters=3, device="cpu"))
    together = tok.encode_batch(wavs)
    assert [len(u) for u in together] == [50, 0, 15, 150]
    for w, u in zip(wavs, together):
        assert np.array_equal(u, tok.encode(w)) and u.dtype == np.uint16


def test_audio_stage_flac_decodes_in_process_to_ffmpegs_samples(tmp_path, monkeypatch):
    import mmdata.media_io as media_io

    rng = np.random.default_rng(3)
    wav = (0.5 * rng.standard_normal(12345)).clip(-1, 1).astype(np.float32)
    (tmp_path / "a.flac").write_bytes(flac_bytes(wav, 16000))
    fast = read_audio(tmp_path / "a.flac", 16000)
    monkeypatch.setattr(media_io, "_read_sndfile", lambda path, rate: None)  # force the ffmpeg path
    slow = read_audio(tmp_path / "a.flac", 16000)
    assert fast.dtype == slow.dtype == np.float32 and np.array_equal(fast, slow) and len(fast) == 12345


def test_other_rates_and_channels_still_go_through_ffmpeg(tmp_path):
    from mmdata.media_io import _read_sndfile

    stereo = audio_file(tmp_path / "s.wav", "sin(2*PI*440*t)", 0.5, rate=16000, channels=2)
    hi = audio_file(tmp_path / "h.flac", "sin(2*PI*440*t)", 0.5, rate=44100)
    assert _read_sndfile(stereo, 16000) is None and _read_sndfile(hi, 16000) is None
    assert read_audio(stereo, 16000).shape == (8000,) and read_audio(hi, 16000).shape == (8000,)
    (tmp_path / "bad.flac").write_bytes(b"fLaC but not really")
    assert _read_sndfile(tmp_path / "bad.flac", 16000) is None
    from mmdata.errors import ItemError

    with pytest.raises(ItemError) as e:
        read_audio(tmp_path / "bad.flac", 16000)
    assert e.value.reason == "corrupt_file"


def test_quantize_needs_no_ffmpeg_for_the_audio_stages_own_files(many, tmp_path, monkeypatch):
    """A GPU node without media tools: the audio stage's 16 kHz FLAC quantizes to the same tokens; audio at
    another rate is a `missing_ffmpeg` row, and the other clips are unaffected."""
    work, tok = many
    _, ref, _ = _run(work, tok, tmp_path / "ref", 32)
    w = copy_work(work, tmp_path / "w")
    other = w.clip_keys()[5]
    put_audio(w, other, np.zeros(22050, np.float32), sample_rate=22050)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    s = run_stage(QuantizeStage(QuantizeConfig(tokenizers=str(tok), device="cpu")), w,
                  RunnerConfig(progress=False, workers=1))
    rows = {r.key: (r.status, r.reason) for r in read_all_status(w, "quantize")}
    assert rows[other] == ("error", "missing_ffmpeg") and (s.ok, s.failed) == (10, 2)
    got = stage_files(w, "quantize")
    assert {k: v for k, v in ref.items() if k.endswith(".npy") and not k.startswith(other)} == \
        {k: v for k, v in got.items() if k.endswith(".npy")}


class CrashyBatch(Stage):
    """Batches of 3; segfaults its worker when a batch holds the clip captioned 'crash'."""

    name = "crashybatch"
    batch_size = 3

    def process_batch(self, items, loaded, out_dirs, work):
        if any(it.caption == "crash" for it in items):
            import ctypes

            ctypes.string_at(0)  # a real SIGSEGV
        for d in out_dirs:
            (d / "batch.txt").write_text(str(len(items)))
        return [{"caption": it.caption} for it in items]


def test_a_crash_inside_a_batch_blames_only_the_item_that_crashed(tmp_path):
    """A batched stage whose worker segfaults on one item: the batch's items are retried one at a time,
    and only the culprit becomes a worker_crashed row."""
    from mmdata.records import Clip

    captions = ["a", "b", "crash", "d", "e", "f", "g"]
    work = make_work(tmp_path, [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, caption=c, chunk=0)
                                for i, c in enumerate(captions)])
    s = run_stage(CrashyBatch(), work, RunnerConfig(progress=False, workers=2))
    rows = {r.key: (r.status, r.reason) for r in read_all_status(work, "crashybatch")}
    assert rows == {f"v{i}_0_1000": ("error", "worker_crashed") if c == "crash" else ("ok", "")
                    for i, c in enumerate(captions)}
    assert (s.ok, s.failed) == (6, 1)
    size = {k: int((work.item_dir("crashybatch", k) / "batch.txt").read_text()) for k, (st, _) in rows.items()
            if st == "ok"}
    assert size["v0_0_1000"] == size["v1_0_1000"] == 1  # the crashed batch's survivors ran alone


class Doubler(Stage):
    """Batches of 2 that write each caption twice."""

    name = "doubler"
    batch_size = 2

    def process_batch(self, items, loaded, out_dirs, work):
        for it, d in zip(items, out_dirs):
            (d / "x.txt").write_text(it.caption * 2)
        return [{} for _ in items]


def test_a_resumed_batched_chunk_reports_every_item_to_its_progress(tmp_path):
    from mmdata.pipelines.runner import run_chunk
    from mmdata.records import Clip

    clips = [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, caption=str(i), chunk=0) for i in range(5)]
    work = make_work(tmp_path, clips)
    seen: list[str] = []
    rows = run_chunk(Doubler(), str(work.root), 0, clips, on_item=lambda r: seen.append(r.key))
    assert [r.status for r in rows] == ["ok"] * 5 and sorted(seen) == [c.key for c in clips]
    seen.clear()
    again = run_chunk(Doubler(), str(work.root), 0, clips, on_item=lambda r: seen.append(r.key))
    assert [r.key for r in again] == [c.key for c in clips] and sorted(seen) == [c.key for c in clips]
