"""speech_ratio and the low_speech filter on real audio generated here, through the real audio stage and Silero
VAD: espeak-ng speech with known word times and a long pause, a tone (music-like: voiced-sounding but no
speech) and digital silence."""
from __future__ import annotations

import pytest

from mmdata.filters.funnel import funnel
from mmdata.filters.rules import FilterConfig, scores_from_detail
from mmdata.media_io import read_audio
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.filters import FilterStage
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.media import audio_file, make_video
from mmdata.testing.speech import SAMPLE_RATE, spoken_words
from mmdata.testing.workdirs import add_downloaded, make_work
from mmdata.transcripts.vad import load_vad

RUN = RunnerConfig(workers=1, progress=False)
WORDS = "set white with p two soon please".split()
GAPS = [0.3, 0.3, 1.5, 0.3, 0.3, 0.3]  # a 1.5 s pause after the third word: no speech may be found there


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("speech-media")
    truth = spoken_words(WORDS, d / "speech.wav", gap_s=GAPS, lead_s=0.5)
    audio_file(d / "tone.wav", "0.4*sin(2*PI*220*t)+0.2*sin(2*PI*330*t)", 5.0)  # a steady chord
    audio_file(d / "silence.wav", "0", 5.0)
    return d, truth


def _work(root, media, names):
    clips = [Clip(key=f"{n}_0", video_id=n, url=f"http://127.0.0.1/{n}.wav", kind="audio") for n in names]
    work = make_work(root, clips)
    for n in names:
        add_downloaded(work, n, media / f"{n}.wav", kind="audio")
    assert run_stage(AudioStage(), work, RUN).failed == 0
    return work


def _scores(work):
    return {r.key: (work.output("filter", r.key).scores if r.status == "ok" else scores_from_detail(r.detail)["scores"])
            for r in read_all_status(work, "filter")}


def test_only_the_speech_clip_passes_min_speech_ratio(tmp_path, media):
    folder, truth = media
    work = _work(tmp_path / "work", folder, ["speech", "tone", "silence"])
    run_stage(FilterStage(FilterConfig(min_speech_ratio=0.3)), work, RUN)
    rows = {r.key: r for r in read_all_status(work, "filter")}
    assert {k: (r.status, r.reason) for k, r in rows.items()} == {
        "speech_0": ("ok", ""), "tone_0": ("error", "low_speech"), "silence_0": ("error", "low_speech")}
    scores = _scores(work)
    spoken = sum(w.end - w.start for w in truth) / (read_audio(folder / "speech.wav").size / SAMPLE_RATE)
    assert scores["speech_0"]["speech_ratio"] == pytest.approx(spoken, abs=0.1)  # VAD regions vs the words
    assert scores["tone_0"]["speech_ratio"] < 0.1 and scores["silence_0"]["speech_ratio"] == 0.0
    assert rows["tone_0"].detail.startswith("speech_ratio ") and "< min_speech_ratio 0.3" in rows["tone_0"].detail
    assert work.output("filter", "speech_0").thresholds == {**work.output("filter", "speech_0").thresholds,
                                                             "min_speech_ratio": 0.3}
    f = funnel(work)
    assert [(s.label, s.clips) for s in f.steps] == [("filter: low_speech", 2)] and f.kept == 1
    assert sorted(f.scores["speech_ratio"]) == sorted(s["speech_ratio"] for s in scores.values())
    assert "score speech_ratio: 3 clips" in f.render() and "rejected when low_speech < 0.3" in f.render()


def test_vad_regions_lie_on_the_known_speech(media):
    folder, truth = media
    wav = read_audio(folder / "speech.wav", SAMPLE_RATE)
    regions = load_vad("silero").regions(wav, SAMPLE_RATE)
    assert abs(regions[0][0] - truth[0].start) < 0.1 and abs(regions[-1][1] - truth[-1].end) < 0.1
    pause = (truth[2].end, truth[3].start)  # 1.5 s of silence
    assert not [r for r in regions if r[0] < pause[1] - 0.1 and r[1] > pause[0] + 0.1]
    assert all(any(s - 0.1 <= w.start and w.end <= e + 0.1 for s, e in regions) for w in truth)  # every word is in one


def test_clips_without_audio_get_no_speech_ratio_and_pass(tmp_path):
    make_video(tmp_path / "mute.mp4", 2.0, audio=False)
    clips = [Clip(key="mute_0", video_id="mute", url="http://127.0.0.1/mute.mp4")]
    work = make_work(tmp_path / "work", clips)
    add_downloaded(work, "mute", tmp_path / "mute.mp4")
    run_stage(AudioStage(), work, RUN)
    stage = FilterStage(FilterConfig(min_speech_ratio=0.3))
    run_stage(stage, work, RUN)
    assert work.output("filter", "mute_0").scores["speech_ratio"] is None
    assert stage._vad is None  # no clip had audio: the VAD never loaded


def test_no_audio_stage_means_no_speech_ratio_and_no_vad(tmp_path):
    make_video(tmp_path / "v.mp4", 2.0)
    work = make_work(tmp_path / "work", [Clip(key="v_0", video_id="v", url="http://127.0.0.1/v.mp4")])
    add_downloaded(work, "v", tmp_path / "v.mp4")
    run_stage(FramesStage(), work, RUN)
    stage = FilterStage(FilterConfig(min_speech_ratio=0.3))
    run_stage(stage, work, RUN)
    assert work.output("filter", "v_0").scores["speech_ratio"] is None and stage._vad is None



def test_min_speech_ratio_from_yaml_and_its_bounds(tmp_path):
    import subprocess
    import sys

    from mmdata.pipelines.pipeline import STAGE_MAKERS, PipelineConfig

    (tmp_path / "f.yaml").write_text("manifest: m.csv\nwork: w\nout: o\nfilters: {min_speech_ratio: 0.3}\n")
    stage = STAGE_MAKERS["filter"](PipelineConfig.from_yaml(tmp_path / "f.yaml"), None)
    assert stage.cfg.min_speech_ratio == 0.3 and [f.name for f in stage.filters] == ["low_speech"]
    bad = subprocess.run([sys.executable, "-m", "mmdata.cli", "filter", "--work", str(tmp_path / "w"),
                          "--min-speech-ratio", "1.5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "min_speech_ratio" in bad.stderr
