"""The filter stage on real media generated here: a moving clip, a still slideshow and a black clip through
the real frames stage; duration, resolution and aspect thresholds on clips of known sizes; the funnel's
counts; and a rejected clip kept in the status tables but never in the shards."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mmdata.filters.funnel import funnel
from mmdata.filters.rules import FILTERS, FilterConfig, scores_from_detail
from mmdata.media.config import FramesConfig
from mmdata.pipelines.filters import FilterStage
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.reasons import describe
from mmdata.records import Clip
from mmdata.testing.media import box_video, make_video, slideshow_video
from mmdata.testing.workdirs import add_downloaded, make_work

RUN = RunnerConfig(workers=1, progress=False)
CLI = [sys.executable, "-m", "mmdata.cli"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("filters-media")
    make_video(d / "moving.mp4", 6.0, audio=False)  # testsrc2: a moving pattern
    slideshow_video(d / "slides.mp4", slides=3, slide_s=2.0)
    box_video(d / "black.mp4", 6.0, [])
    make_video(d / "short.mp4", 1.0, audio=False)  # 320x240, 1 s
    make_video(d / "small.mp4", 3.0, size=(160, 120), audio=False)
    make_video(d / "wide.mp4", 3.0, size=(720, 240), audio=False)  # aspect 3, short side 240
    return d


def _work(root, media, names):
    clips = [Clip(key=f"{n}_0", video_id=n, url=f"http://127.0.0.1/{n}.mp4", kind="video") for n in names]
    work = make_work(root, clips)
    for n in names:
        add_downloaded(work, n, media / f"{n}.mp4")
    assert run_stage(FramesStage(FramesConfig(frames=8)), work, RUN).failed == 0
    return work


def _rows(work):
    return {r.key: r for r in read_all_status(work, "filter")}


def test_only_the_moving_clip_passes_the_static_and_black_filters(tmp_path, media):
    work = _work(tmp_path / "work", media, ["moving", "slides", "black"])
    run_stage(FilterStage(FilterConfig(min_motion=0.01, max_black_fraction=0.5)), work, RUN)
    rows = _rows(work)
    assert {k: (r.status, r.reason) for k, r in rows.items()} == {
        "moving_0": ("ok", ""), "slides_0": ("error", "static_video"), "black_0": ("error", "black_frames")}
    kept = work.output("filter", "moving_0")
    assert kept.scores["motion"] > 0.02 and kept.scores["black_fraction"] == 0.0
    assert kept.thresholds["min_motion"] == 0.01
    slides = scores_from_detail(rows["slides_0"].detail)
    assert slides["scores"]["motion"] == 0.0 and slides["scores"]["black_fraction"] == 0.0  # still, not blank
    assert rows["slides_0"].detail.startswith("motion 0 < min_motion 0.01")
    black = scores_from_detail(rows["black_0"].detail)["scores"]
    assert black["black_fraction"] == 1.0 and black["motion"] == 0.0  # black is also still: reported as black


def test_duration_resolution_and_aspect_thresholds(tmp_path, media):
    work = _work(tmp_path / "work", media, ["moving", "short", "small", "wide"])
    cfg = FilterConfig(min_duration_s=2.0, min_side=200, min_aspect=0.5, max_aspect=2.0)
    run_stage(FilterStage(cfg), work, RUN)
    rows = _rows(work)
    assert {k: r.reason for k, r in rows.items()} == {
        "moving_0": "", "short_0": "too_short", "small_0": "low_resolution", "wide_0": "bad_aspect"}
    scores = {k: (work.output("filter", k).scores if r.status == "ok" else scores_from_detail(r.detail)["scores"])
              for k, r in rows.items()}
    assert scores["short_0"]["duration_s"] == pytest.approx(1.0, abs=0.05)
    assert scores["small_0"]["short_side"] == 120.0 and scores["wide_0"]["aspect"] == 3.0
    assert scores["moving_0"] == {**scores["moving_0"], "duration_s": pytest.approx(6.0, abs=0.05),
                                  "short_side": 240.0, "aspect": pytest.approx(4 / 3, abs=1e-3)}
    # one threshold moved: the same clips, judged again, pass
    work.reset_stage("filter")
    run_stage(FilterStage(FilterConfig(max_duration_s=5.0)), work, RUN)
    assert {k: r.reason for k, r in _rows(work).items()} == {
        "moving_0": "too_long", "short_0": "", "small_0": "", "wide_0": ""}


def test_the_funnel_counts_each_clip_once_at_its_first_stop(tmp_path, media):
    work = _work(tmp_path / "work", media, ["moving", "slides", "black", "short"])
    run_stage(FilterStage(FilterConfig(min_duration_s=2.0, min_motion=0.01, max_black_fraction=0.5)), work, RUN)
    f = funnel(work)
    assert (f.clips, f.kept) == (4, 1)
    assert [(s.label, s.clips) for s in f.steps] == [  # in the order the filters apply
        ("filter: too_short", 1), ("filter: black_frames", 1), ("filter: static_video", 1)]
    assert f.seconds == pytest.approx(19.0, abs=0.2) and f.kept_seconds == pytest.approx(6.0, abs=0.1)
    assert sorted(f.scores["motion"])[:2] == [0.0, 0.0] and min(f.scores["black_fraction"]) == 0.0
    assert len(f.scores["motion"]) == 4 and f.thresholds[0]["clips"] == 4
    text = f.render()
    assert "filter: static_video" in text and "score motion: 4 clips" in text
    assert "rejected when static_video < 0.01" in text


def test_a_filtered_clip_is_in_the_status_tables_and_never_in_the_shards(tmp_path):
    """The corpus builder's real frames and quantize outputs, then the filter stage after quantize: shard
    still leaves the rejected clip out, counted by its filter reason, and index.json records the thresholds."""
    from mmdata.shards.build import ShardConfig, build_shards
    from mmdata.shards.index import ShardIndex
    from mmdata.testing.corpus import make_corpus

    corpus = make_corpus(tmp_path, n_clips=4, duration_s=2.0, patterns=(("vision", "speech", "language"),))
    work = corpus.work
    first = corpus.clips[0].key
    run_stage(FilterStage(FilterConfig(min_duration_s=1.0)), work, RUN)
    assert {r.status for r in read_all_status(work, "filter")} == {"ok"}
    work.reset_stage("filter")
    run_stage(FilterStage(FilterConfig(max_duration_s=1.5)), work, RUN)  # every clip is 2 s: all rejected
    rows = _rows(work)
    assert rows[first].status == "error" and rows[first].reason == "too_long"
    out = tmp_path / "out"
    summary = build_shards(work, out, ShardConfig(), progress=False)
    assert summary.samples == 0 and summary.left_out == {"filter:too_long": 4}
    index = ShardIndex.read(out)
    assert index.corpus["filters"] == [{"thresholds": {"black_range": 0.06, "max_duration_s": 1.5,
                                                       "measure_size": 64}, "clips": 4}]
    # kept again with a looser threshold: the shards come back
    work.reset_stage("filter")
    run_stage(FilterStage(FilterConfig(max_duration_s=3.0)), work, RUN)
    assert build_shards(work, out, ShardConfig(), progress=False).samples == 4


def test_quantize_leaves_a_filtered_clip_out_as_missing_filter_and_the_funnel_says_filtered(tmp_path, media):
    from mmdata.errors import ItemError
    from mmdata.pipelines.base import upstream_output

    work = _work(tmp_path / "work", media, ["moving", "slides"])
    run_stage(FilterStage(FilterConfig(min_motion=0.01)), work, RUN)
    assert upstream_output(work, "filter", "moving_0") is not None
    with pytest.raises(ItemError) as e:
        upstream_output(work, "filter", "slides_0")
    assert e.value.reason == "missing_filter"
    # quantize's rows for it, as quantize writes them: the funnel still counts the clip as filtered
    from mmdata.pipelines.status import write_status
    from mmdata.records import StatusRow

    tmp = work.temp_item_dir("quantize", "moving_0")
    work.commit_item(tmp, "quantize", "moving_0", {"modalities": ["vision"]})
    write_status(work, "quantize", 0, [StatusRow("moving_0", "ok"),
                                       StatusRow("slides_0", "error", "missing_filter", "no filter output")])
    f = funnel(work)
    assert [(s.label, s.clips) for s in f.steps] == [("filter: static_video", 1)] and f.kept == 1


def test_every_filter_reason_is_registered():
    for name in FILTERS:
        entry = describe(name)
        assert entry is not None and "filter" in entry.stages, name
    assert describe("missing_filter").name == "missing_<stage>"


def test_cli_filter_and_stats_funnel(tmp_path, media):
    work = _work(tmp_path / "work", media, ["moving", "black"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text("filters: {max_black_fraction: 0.5}\n")
    done = subprocess.run(CLI + ["filter", "--work", str(work.root), "--config", str(cfg), "--min-duration", "2",
                                 "--workers", "1", "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 3, done.stdout + done.stderr  # some clips rejected: the stage's exit code
    assert "black_frames             1" in done.stdout
    assert _rows(work)["moving_0"].status == "ok"
    stats = subprocess.run(CLI + ["stats", "--work", str(work.root), "--html", str(tmp_path / "r.html")],
                           capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    assert "filter: black_frames" in stats.stdout and "score black_fraction: 2 clips" in stats.stdout
    page = (tmp_path / "r.html").read_text()
    summary = json.loads(page.split('id="summary">')[1].split("</script>")[0])
    assert summary["funnel"]["kept"] == 1 and "Filter score: motion" in page
    bad = subprocess.run(CLI + ["filter", "--work", str(work.root), "--max-black-fraction", "2"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "max_black_fraction" in bad.stderr


def test_the_pipeline_yaml_adds_the_filter_stage_with_its_section(tmp_path):
    from mmdata.pipelines.pipeline import STAGE_MAKERS, PipelineConfig
    from mmdata.pipelines.stream import ChunkGraph

    base = "manifest: m.csv\nwork: w\nout: o\n"
    (tmp_path / "plain.yaml").write_text(base)
    (tmp_path / "f.yaml").write_text(base + "filters: {min_duration: 2, min_motion: 0.01}\n")
    assert "filter" not in PipelineConfig.from_yaml(tmp_path / "plain.yaml").stages
    cfg = PipelineConfig.from_yaml(tmp_path / "f.yaml")
    assert cfg.stages == ("download", "frames", "audio", "align", "filter", "tokenizers", "quantize", "shard")
    stage = STAGE_MAKERS["filter"](cfg, None)
    assert (stage.cfg.min_duration_s, stage.cfg.min_motion) == (2.0, 0.01)
    graph = ChunkGraph(["frames", "filter", "quantize"], {"frames": {}, "filter": {}, "quantize": {}}, [], None, 2)
    assert graph.deps("quantize") == ["frames", "filter"] and graph.deps("filter") == ["frames"]
