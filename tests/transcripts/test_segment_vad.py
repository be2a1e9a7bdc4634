"""`--segment vad`: the vad stage's speech regions per source and the speech-bounded clips made from them, on
real espeak-ng sentences with silences of known lengths between them, as the sound of a video (H.264 + AAC):
clips start and end within 100 ms of the speech (no padding), never hold a long silence, speech longer than
segment_max_len_s is cut at its longest pause, speech shorter than segment_min_len_s is dropped, a source
without speech gives no clips and the log says why; the same clips every run, from the stored regions alone."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmdata.pipelines.align import AlignConfig, segment_work
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.vad import VadStage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.media import make_video
from mmdata.testing.speech import spoken_video
from mmdata.testing.workdirs import add_downloaded, make_work
from mmdata.transcripts.segment import speech_windows

RUN = RunnerConfig(workers=1, progress=False)
SENTENCES = ["the quick brown fox jumps over the lazy dog", "she sells sea shells by the shore", "yes",
             "a long time ago in a galaxy far away", "we choose to go to the moon", "and do the other things"]
# after each sentence: 0.25 s (joined), 2 s, 2 s (long: a clip ends), 0.4 s (the longest pause of a run
# too long for one clip: cut there), 0.2 s
GAPS = [0.25, 2.0, 2.0, 0.4, 0.2]
CFG = AlignConfig(segment="vad", segment_min_len_s=1.0, segment_max_len_s=5.5, segment_pause_s=0.5)
TOL = 0.1


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("vad-media")
    truth = spoken_video(SENTENCES, d / "talk.mp4", GAPS)
    make_video(d / "tone.mp4", 4.0, size=(160, 120))
    make_video(d / "silent.mp4", 4.0, size=(160, 120), tone_hz=None)
    make_video(d / "mute.mp4", 2.0, size=(160, 120), audio=False)
    return d, truth


def _work(root: Path, media: Path, names: list[str]):
    work = make_work(root, [Clip(key=f"{n}_full", video_id=n, url=f"http://127.0.0.1/{n}") for n in names])
    for n in names:
        add_downloaded(work, n, media / f"{n}.mp4")
    return work


def test_clips_are_bounded_by_the_speech(tmp_path, media):
    d, truth = media
    assert truth[5].end - truth[3].start > CFG.segment_max_len_s  # the run the longest pause must cut
    assert truth[1].end - truth[0].start < CFG.segment_max_len_s
    work = _work(tmp_path / "work", d, ["talk"])
    assert run_stage(VadStage(), work, RUN).failed == 0
    rec = work.output("vad", "talk")
    assert rec.present and rec.detector["model"] == "silero" and rec.duration_s == pytest.approx(
        truth[-1].end + 1.0, abs=0.05)
    assert segment_work(work, CFG) == (1, 3)
    spans = [(c.start_s, c.end_s) for c in work.clips()]
    want = [(truth[0].start, truth[1].end), (truth[3].start, truth[3].end), (truth[4].start, truth[5].end)]
    assert len(spans) == len(want)
    for (s, e), (ws, we) in zip(spans, want):
        assert abs(s - ws) <= TOL and abs(e - we) <= TOL, (spans, want)
    long_silences = [(truth[i].end, truth[i + 1].start) for i, g in enumerate(GAPS) if g >= CFG.segment_pause_s]
    assert not [c for c in spans for a, b in long_silences if c[0] < b - TOL and c[1] > a + TOL]
    assert not [c for c in spans if c[0] < truth[2].end and c[1] > truth[2].start]  # "yes": under 1 s, dropped
    assert [c.key for c in work.clips()] == [f"talk_{round(s * 1000)}_{round(e * 1000)}" for s, e in spans]


def test_the_same_clips_every_run_from_the_stored_regions(tmp_path, media):
    d, _ = media
    made = []
    for name in ("a", "b"):
        work = _work(tmp_path / name, d, ["talk"])
        run_stage(VadStage(), work, RUN)
        (work.item_dir("download", "talk") / work.output("download", "talk").media).unlink()  # nothing to decode
        segment_work(work, CFG)
        made.append(work.clips())
    assert made[0] == made[1] and len(made[0]) == 3
    assert segment_work(work, CFG) == (0, 0) and work.clips() == made[1]  # segmented sources stay as they are


def test_sources_without_speech_give_no_clips(tmp_path, media, caplog):
    d, _ = media
    work = _work(tmp_path / "work", d, ["talk", "tone", "silent", "mute"])
    s = run_stage(VadStage(), work, RUN)
    assert s.failed == 0 and "speech in 1 of 3 sources with audio" in s.render()
    assert work.output("vad", "tone").regions_s == () and work.output("vad", "silent").regions_s == ()
    assert work.output("vad", "mute").present is False and work.output("vad", "mute").reason == "no_audio_stream"
    with caplog.at_level(logging.WARNING):
        assert segment_work(work, CFG) == (1, 3)
    assert {c.video_id for c in work.clips()} == {"talk"}
    assert "2 source(s) gave no clips: the VAD found no speech in their audio, e.g. tone, silent" in caplog.text
    assert "1 source(s) gave no clips: no audio to find speech in (no_audio_stream), e.g. mute" in caplog.text
    # and the funnel counts them, by why, beside the clips (they have none)
    from mmdata.filters.funnel import funnel

    f = funnel(work.fresh())
    assert {why: n for why, (n, _) in f.unsegmented.items()} == {"no speech": 2, "no audio": 1}
    assert f.unsegmented["no speech"][1] > 0  # the tone's and the silence's seconds of audio
    assert "segmenting at speech (--segment vad) made no clips of 3 source(s)" in f.render()


def test_sources_without_a_vad_record_stay_whole(tmp_path, media, caplog):
    d, _ = media
    work = _work(tmp_path / "work", d, ["talk"])
    with caplog.at_level(logging.WARNING):
        assert segment_work(work, CFG) == (0, 0)
    assert [c.key for c in work.clips()] == ["talk_full"] and "no vad record (see `mmdata vad" in caplog.text


def test_speech_window_rules():
    regions = [(0.5, 1.0), (1.2, 2.0), (4.0, 4.3), (6.0, 9.0), (9.1, 12.0), (12.3, 20.0), (22.0, 60.0)]
    assert speech_windows(regions, 1.0, 10.0, 0.5) == [
        (0.5, 2.0),  # joined over a 0.2 s pause
        # (4.0, 4.3): 0.3 s, dropped
        (6.0, 12.0), (12.3, 20.0),  # 14 s of speech cut at its longest pause (0.3 s)
        (22.0, 31.5), (31.5, 41.0), (41.0, 50.5), (50.5, 60.0)]  # 38 s without a pause: equal windows
    # a pause too near an end to leave segment_min_len_s on that side is not cut at
    assert speech_windows([(0.0, 0.5), (0.8, 12.0)], 1.0, 10.0, 0.5) == [(0.0, 6.0), (6.0, 12.0)]
    assert speech_windows([], 1.0, 10.0, 0.5) == []


def test_cli_and_run(tmp_path, media):
    from mmdata.commands.align import align_cmd
    from mmdata.commands.vad import vad_cmd
    from mmdata.pipelines.pipeline import PipelineConfig, run_pipeline
    from mmdata.workdir import WorkDir

    d, truth = media
    work = _work(tmp_path / "work", d, ["talk", "tone"])
    res = CliRunner().invoke(vad_cmd, ["--work", str(work.root), "--no-progress", "--threshold", "0.6"])
    assert res.exit_code == 0, res.output
    assert work.output("vad", "talk").detector["threshold"] == 0.6
    res = CliRunner().invoke(align_cmd, ["--work", str(work.root), "--no-progress", "--segment", "vad",
                                         "--segment-max-len", "5.5", "--segment-pause", "0.5"])
    assert res.exit_code == 0, res.output
    assert "segment (vad): 1 sources cut into 3 clips" in res.output
    res = CliRunner().invoke(vad_cmd, ["--work", str(work.root), "--release", "0.9"])
    assert res.exit_code == 2 and "release" in res.output

    (tmp_path / "m.csv").write_text(f"url,video_id\n{d / 'talk.mp4'},talk\n{d / 'tone.mp4'},tone\n")
    (tmp_path / "p.yaml").write_text(
        "manifest: m.csv\nwork: w\nout: out\nstages: [download, align]\ndownload: {allow_local: true}\n"
        "align: {segment: vad, segment_max_len: 5.5, vad: none}\nvad: {min_silence: 0.1}\nrunner: {workers: 1}\n")
    results = run_pipeline(PipelineConfig.from_yaml(tmp_path / "p.yaml"))
    assert [(r.stage, r.ok, r.failed) for r in results] == [("download", 2, 0), ("vad", 2, 0), ("align", 3, 0)]
    run_work = WorkDir(tmp_path / "w")
    assert [(c.start_s, c.end_s) for c in run_work.clips()] == [(c.start_s, c.end_s) for c in work.clips()]
    assert {r.key: r.status for r in read_all_status(run_work, "vad")} == {"talk": "ok", "tone": "ok"}
