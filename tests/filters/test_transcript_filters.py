"""The transcript filters through the real audio, align and filter stages: few_words (words per second of speech)
and wrong_language (py3langid over the align stage's text). Clips carry their transcript as manifest text;
their audio is digital silence (the audio stage flags it: speech_ratio 0 without the VAD, so words per second is
over the clip's length, exactly) or espeak-ng speech (over the seconds Silero VAD finds)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from mmdata.errors import ConfigError
from mmdata.filters.funnel import funnel
from mmdata.filters.rules import FilterConfig, scores_from_detail
from mmdata.pipelines.align import AlignConfig, AlignStage
from mmdata.pipelines.audio import AudioStage
from mmdata.pipelines.filters import FilterStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.records import Clip
from mmdata.testing.media import audio_file
from mmdata.testing.speech import spoken_words
from mmdata.testing.workdirs import add_downloaded, make_work

RUN = RunnerConfig(workers=1, progress=False)
TEXTS = {  # clip -> its manifest transcript
    "en1": "so today we are going to talk about how the engine works",  # 12 words
    "en2": "thanks for watching and please subscribe to the channel",  # 9 words
    "en3": "the market opens at eight in the morning",  # 8 words
    "de": "heute sprechen wir darüber wie der Motor funktioniert und warum das wichtig ist",  # 13 words
    "short": "guten Morgen zusammen",  # 3 words: too few to tell
    "mixed": "okay okay so ja genau",  # 5 words, but no language the identifier is sure of
}
SPOKEN = "set white with p two soon please".split()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("transcript-media")
    audio_file(d / "silence.wav", "0", 6.0)
    spoken_words(SPOKEN, d / "talk.wav", gap_s=[0.3, 0.3, 1.5, 0.3, 0.3, 0.3], lead_s=0.5)
    return d


def _work(root, media, clips: dict[str, tuple[str, dict]]):
    """Audio-only clips: name -> (source file in `media`, Clip fields), through the audio and align stages."""
    rows = [Clip(key=f"{n}_0", video_id=n, url=f"http://127.0.0.1/{n}.wav", kind="audio", **fields)
            for n, (_, fields) in clips.items()]
    work = make_work(root, rows)
    for n, (source, _) in clips.items():
        add_downloaded(work, n, media / source, kind="audio")
    assert run_stage(AudioStage(), work, RUN).failed == 0
    assert run_stage(AlignStage(AlignConfig(vad="energy")), work, RUN).failed == 0
    return work


def _rows(work):
    return {r.key: r for r in read_all_status(work, "filter")}


def _scores(work):
    return {k: (work.output("filter", k).scores if r.status == "ok" else scores_from_detail(r.detail)["scores"])
            for k, r in _rows(work).items()}


@pytest.fixture
def texts_work(tmp_path, media):
    clips = {n: ("silence.wav", {"text": t}) for n, t in TEXTS.items()}
    clips["pic"] = ("silence.wav", {"caption": "a red car parked in the street near the old river bank"})
    return _work(tmp_path / "work", media, clips)


def test_a_german_transcript_among_english_ones_is_dropped_by_language_en(texts_work):
    work = texts_work
    run_stage(FilterStage(FilterConfig(language=("en",))), work, RUN)
    rows = _rows(work)
    assert {k: (r.status, r.reason) for k, r in rows.items()} == {
        "en1_0": ("ok", ""), "en2_0": ("ok", ""), "en3_0": ("ok", ""), "de_0": ("error", "wrong_language"),
        "short_0": ("ok", ""), "mixed_0": ("ok", ""), "pic_0": ("ok", "")}
    scores = _scores(work)
    assert scores["de_0"]["language"] == "de" and scores["de_0"]["language_confidence"] > 0.9
    assert rows["de_0"].detail.startswith(f"language de (confidence {scores['de_0']['language_confidence']}) "
                                          "not in language en; scores ")
    assert scores["de_0"]["words"] == 13
    assert all(scores[f"en{i}_0"]["language"] == "en" for i in (1, 2, 3))
    # 3 words: too few to tell, no language, kept; a caption is no transcript: no words at all
    assert (scores["short_0"]["words"], scores["short_0"]["language"], scores["short_0"]["language_confidence"]) \
        == (3, None, None)
    assert {m: scores["pic_0"][m] for m in ("words", "words_per_second", "language")} == dict.fromkeys(
        ("words", "words_per_second", "language"))
    mixed = scores["mixed_0"]
    assert mixed["language"] != "en" and mixed["language_confidence"] < 0.5  # unsure: kept at the default 0.5
    assert work.output("filter", "en1_0").thresholds["language"] == ["en"]  # as JSON keeps it
    f = funnel(work)
    assert [(s.label, s.clips) for s in f.steps] == [("filter: wrong_language", 1)] and f.kept == 6
    assert f.labels["language"] == {"en": 3, "de": 1, mixed["language"]: 1}
    text = f.render()
    assert ("score language: 5 clips; rejected when wrong_language: not en (confidence >= 0.5)" in text
            and "  en 3, de 1, " in text)
    assert "score language_confidence: 5 clips" in text and "score words_per_second: 6 clips" in text
    # German kept too; a list, as the YAML and `--language en,de` give it
    work.reset_stage("filter")
    run_stage(FilterStage(FilterConfig(language="en,de")), work, RUN)
    assert {r.status for r in _rows(work).values()} == {"ok"}


def test_min_language_confidence_decides_whether_an_unsure_detection_rejects(texts_work):
    work = texts_work
    run_stage(FilterStage(FilterConfig(language=("en",), min_language_confidence=0.1)), work, RUN)
    assert {k for k, r in _rows(work).items() if r.status == "error"} == {"de_0", "mixed_0"}
    work.reset_stage("filter")
    run_stage(FilterStage(FilterConfig(language=("en",), min_language_confidence=None)), work, RUN)  # any
    assert {k for k, r in _rows(work).items() if r.status == "error"} == {"de_0", "mixed_0"}


def test_words_per_second_over_the_clip_length_when_the_vad_finds_no_speech(texts_work):
    work = texts_work
    run_stage(FilterStage(FilterConfig(min_words_per_second=1.6)), work, RUN)
    rows, scores = _rows(work), _scores(work)
    duration = scores["en1_0"]["duration_s"]
    assert duration == pytest.approx(6.0, abs=0.01) and scores["en1_0"]["speech_ratio"] == 0.0  # digital silence
    for n, t in TEXTS.items():
        assert scores[f"{n}_0"]["words_per_second"] == round(len(t.split()) / duration, 4), n
    assert {k: r.reason for k, r in rows.items()} == {  # 12 and 13 words in 6 s kept; 9, 8, 5 and 3 not
        "en1_0": "", "de_0": "", "en2_0": "few_words", "en3_0": "few_words", "short_0": "few_words",
        "mixed_0": "few_words", "pic_0": ""}
    assert rows["en2_0"].detail.startswith(
        f"words_per_second {9 / duration:.4g} words/s < min_words_per_second 1.6 words/s: 9 words over "
        f"{duration:.4g} s, the clip's length (the VAD found no speech, or did not run); scores ")
    text = funnel(work).render()
    assert "score words_per_second: 6 clips" in text and "rejected when few_words < 1.6" in text


def test_words_per_second_over_the_speech_silero_vad_finds(tmp_path, media):
    work = _work(tmp_path / "work", media, {"talk": ("talk.wav", {"text": " ".join(SPOKEN)})})
    run_stage(FilterStage(FilterConfig(min_words_per_second=10)), work, RUN)
    [row] = _rows(work).values()
    s = scores_from_detail(row.detail)["scores"]
    speech = s["speech_ratio"] * s["duration_s"]
    assert row.reason == "few_words" and 0.3 < s["speech_ratio"] < 0.9  # the 1.5 s pause and the lead are not speech
    assert s["words"] == 7 and s["words_per_second"] == round(7 / speech, 4)
    assert s["words_per_second"] > 7 / s["duration_s"] * 1.2
    assert row.detail.split("; scores ")[0].endswith(f"7 words over {speech:.4g} s, of speech found by Silero VAD")


def test_both_options_in_the_yaml_filters_section_and_their_checks(tmp_path):
    from mmdata.pipelines.pipeline import STAGE_MAKERS, PipelineConfig

    base = "manifest: m.csv\nwork: w\nout: o\n"
    (tmp_path / "f.yaml").write_text(base + "filters: {min_words_per_second: 0.5, language: [en, de], "
                                            "min_language_confidence: 0.6, language_min_words: 4}\n")
    stage = STAGE_MAKERS["filter"](PipelineConfig.from_yaml(tmp_path / "f.yaml"), None)
    assert (stage.cfg.min_words_per_second, stage.cfg.language, stage.cfg.min_language_confidence,
            stage.cfg.language_min_words) == (0.5, ("en", "de"), 0.6, 4)
    assert [f.name for f in stage.filters] == ["few_words", "wrong_language"]
    (tmp_path / "s.yaml").write_text(base + "filters: {language: en}\n")
    assert STAGE_MAKERS["filter"](PipelineConfig.from_yaml(tmp_path / "s.yaml"), None).cfg.language == ("en",)
    for bad, words in (("language: english", "ISO 639 codes"), ("language: eng", "eng not among"),
                       ("min_words_per_second: -1", "min_words_per_second"),
                       ("min_language_confidence: 2", "min_language_confidence")):
        (tmp_path / "bad.yaml").write_text(base + f"filters: {{{bad}}}\n")
        with pytest.raises(ConfigError, match=words) as e:
            PipelineConfig.from_yaml(tmp_path / "bad.yaml")
        assert "section 'filters'" in str(e.value)
    done = subprocess.run([sys.executable, "-m", "mmdata.cli", "run", str(tmp_path / "bad.yaml")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "min_language_confidence" in done.stderr
