"""The prefilter's rules (mmdata/fetch/prefilter.py) on info dicts as yt-dlp gives them, its config, and the
retry decision; tests/pipelines/test_prefilter.py runs them end to end against a local server."""
import pytest

from mmdata.config import build_config
from mmdata.errors import ConfigError, ItemError
from mmdata.fetch.prefilter import CaptionTrack, Prefilter
from mmdata.pipelines.download import DownloadConfig, DownloadStage
from mmdata.records import StatusRow
from mmdata.testing.captions import random_lines, youtube_json3


def reason(rules: Prefilter, info: dict) -> str:
    try:
        rules.check_info(info, "u")
    except ItemError as e:
        return e.reason
    return ""


def test_a_value_the_page_does_not_give_passes_a_bound_and_fails_an_allow_list():
    info = {"automatic_captions": {"en": []}}  # no duration, categories or licence
    assert reason(Prefilter(min_duration_s=10, max_duration_s=60), info) == ""
    assert reason(Prefilter(categories=("Education",)), info) == "prefilter_category"
    assert reason(Prefilter(deny_categories=("Gaming",)), info) == ""
    assert reason(Prefilter(licenses=("Creative Commons Attribution license (reuse allowed)",)), info) == \
        "prefilter_license"
    # lists compare without case; one allowed category of several is enough, one denied is too many
    both = {**info, "categories": ["Gaming", "Education"]}
    assert reason(Prefilter(categories=("education",)), both) == ""
    assert reason(Prefilter(categories=("education",), deny_categories=("GAMING",)), both) == "prefilter_category"


def test_caption_languages_are_read_as_yt_dlp_reads_them():
    info = {"subtitles": {"en-GB": [], "fr": []}, "automatic_captions": {"en": [], "de": []}}
    assert Prefilter(languages=("en",)).caption_languages(info) == ["en"]
    assert Prefilter(languages=("en.*",)).caption_languages(info) == ["en", "en-GB"]
    assert Prefilter(languages=("en.*",), kinds=("manual",)).caption_languages(info) == ["en-GB"]
    assert Prefilter(languages=("all", "-de")).caption_languages(info) == ["en", "en-GB", "fr"]
    assert reason(Prefilter(languages=("es",)), info) == "prefilter_no_captions"
    assert reason(Prefilter(languages=("es",), kinds=()), info) == ""  # no caption rule


def test_the_word_rule_takes_the_densest_track_of_the_kinds_that_count():
    lines, end_ms = random_lines(12, seed=1)
    dense = CaptionTrack("en", "auto", "json3", youtube_json3(lines, end_ms))
    sparse = CaptionTrack("en", "manual", "vtt", "WEBVTT\n\n00:00.000 --> 00:01.000\none two\n")
    Prefilter(min_words_per_30s=12).check_words([sparse, dense], 30.0, "u")  # 12 words in 30 s
    with pytest.raises(ItemError) as e:
        Prefilter(min_words_per_30s=12, kinds=("manual",)).check_words([sparse, dense], 30.0, "u")
    assert e.value.reason == "prefilter_sparse_captions"
    assert e.value.detail.startswith("u: 2.0 caption words per 30 s (en manual: 2 words over 30 s)")
    # without a duration: over the span the captions cover (one second here)
    Prefilter(min_words_per_30s=60).check_words([sparse], None, "u")
    broken = CaptionTrack("en", "auto", "json3", '{"events": [{"tStartMs": "x"}]}')
    with pytest.raises(ItemError) as e:
        Prefilter(min_words_per_30s=1).check_words([broken], 30.0, "u")
    assert "0 words over 30 s; unreadable: " in e.value.detail


def test_a_drop_is_retried_only_when_its_own_rule_changed():
    def stage(**kw) -> DownloadStage:
        return DownloadStage(DownloadConfig(**kw))

    strict = dict(prefilter=True, prefilter_min_duration_s=10, prefilter_min_words_per_30s=20)
    rules = DownloadConfig(**strict).prefilter_rules
    try:
        rules.check_info({"duration": 5}, "u")
    except ItemError as e:
        row = StatusRow("k", "error", e.reason, e.detail)
    assert row.detail == "u: lasts 5 s (rule: duration in [10 s, -])"
    assert not stage(**strict).should_retry(row)
    assert not stage(**{**strict, "prefilter_min_words_per_30s": 5}).should_retry(row)  # another rule changed
    assert stage(**{**strict, "prefilter_min_duration_s": 3}).should_retry(row)
    assert stage().should_retry(row)  # the prefilter off: everything is admitted again
    assert stage(**strict).should_retry(StatusRow("k", "error", "timeout", "u: timed out"))


def test_prefilter_options_from_the_command_line_and_yaml():
    section = {"prefilter": True, "prefilter_max_duration": 600, "prefilter-categories": ["Education"],
               "prefilter_captions": "manual", "prefilter_licenses": "CC BY, CC0"}
    rules = build_config(DownloadConfig, {}, section).prefilter_rules
    assert rules == Prefilter(("en",), None, 600.0, ("manual",), 0.0, ("Education",), (), ("CC BY", "CC0"))
    assert DownloadConfig(prefilter=True, auto_subtitles=False).prefilter_rules.kinds == ("manual",)
    assert DownloadConfig(prefilter=True, subtitles=False, auto_subtitles=False).prefilter_rules.kinds == ()
    with pytest.raises(ConfigError, match=r"prefilter = False is invalid: true \(--prefilter\) for the prefilter "
                                          r"rules given \(prefilter_max_duration_s\)"):
        DownloadConfig(prefilter_max_duration_s=600)
    with pytest.raises(ConfigError, match="prefilter_captions = 'manual' is invalid: a kind of caption this "
                                          "download fetches"):
        DownloadConfig(prefilter=True, prefilter_captions="manual", subtitles=False)
    with pytest.raises(ConfigError, match="prefilter_captions = 'some'"):
        DownloadConfig(prefilter=True, prefilter_captions="some")
    assert DownloadConfig().prefilter_rules is None
