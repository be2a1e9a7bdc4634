"""Resume rules (README "Resume rules", pipelines/stamps.py): a re-run with options that change a stage's
output is refused naming them, `--force` redoes the chunks and drops what read them, options that only say
how to run do not count; `mmdata run` notices an edited YAML and checks every section before any work."""
from __future__ import annotations

import yaml
from click.testing import CliRunner

from mmdata.commands.media import frames_cmd
from mmdata.commands.run import run_cmd
from mmdata.testing.media import make_video
from mmdata.testing.workdirs import work_with
from mmdata.workdir import WorkDir


def invoke(cmd, *args):
    return CliRunner().invoke(cmd, [*args, "--no-progress"], catch_exceptions=False)


def test_frames_with_another_fps_is_refused_then_forced_and_quantize_dropped(tmp_path):
    src = make_video(tmp_path / "v.mp4", duration_s=2.0)
    work, _ = work_with(tmp_path / "work", src, [(0.0, 2.0)])
    w = str(work.root)
    r = invoke(frames_cmd, "--work", w, "--fps", "2", "--workers", "1")
    assert r.exit_code == 0, r.output
    assert len(work.meta("frames", "src_0")["files"]) == 4
    table = work.read_table("frames", 0)
    assert table.stamp["options"]["fps"] == 2.0 and "decode_threads" not in table.stamp["options"]
    tmp = work.temp_item_dir("quantize", "src_0")  # a quantize chunk that read these frames
    (tmp / "vtok.npy").write_bytes(b"x")
    work.put_item("quantize", "src_0", tmp, {"tokenizers": {}})

    r = invoke(frames_cmd, "--work", w, "--fps", "4", "--workers", "1")
    assert r.exit_code == 2
    assert "frames: 1 of 1 chunk(s) were made with other options: fps 2.0 -> 4.0" in r.output
    assert "--force" in r.output and "quantize" in r.output
    assert len(WorkDir(w).meta("frames", "src_0")["files"]) == 4  # nothing changed
    assert WorkDir(w).has_table("quantize", 0)

    # options that say how to run, not what is made: no refusal, nothing redone
    r = invoke(frames_cmd, "--work", w, "--fps", "2", "--workers", "2", "--decode-threads", "2", "--timeout", "30")
    assert r.exit_code == 0, r.output
    assert "0 items in 0 chunks (1 chunks already done)" in r.output

    r = invoke(frames_cmd, "--work", w, "--fps", "4", "--workers", "1", "--force")
    assert r.exit_code == 0, r.output
    assert "redone: 1 made with other options (--force) chunk(s)" in r.output
    again = WorkDir(w)
    assert len(again.meta("frames", "src_0")["files"]) == 8
    assert again.read_table("frames", 0).stamp["options"]["fps"] == 4.0
    assert not again.has_table("quantize", 0)  # it read the old frames: gone, to be made again


def _pipeline(tmp_path, **sections):
    (tmp_path / "media").mkdir()
    src = make_video(tmp_path / "media" / "v.mp4", duration_s=2.0)
    (tmp_path / "m.csv").write_text(f"video_id,url,start_s,end_s,caption\nv,{src},0,2,hello\n")
    spec = {"manifest": "m.csv", "work": "work", "out": "out", "stages": ["download", "frames"],
            "download": {"allow_local": True}, **sections}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "p.yaml"


def test_run_notices_an_edited_yaml(tmp_path):
    p = _pipeline(tmp_path, frames={"fps": 2})
    r = invoke(run_cmd, str(p), "--workers", "1")
    assert r.exit_code == 0, r.output
    work = WorkDir(tmp_path / "work")
    key = work.clips()[0].key
    assert len(work.meta("frames", key)["files"]) == 4
    downloaded = work.read_table("download", 0).stamp
    spec = yaml.safe_load(p.read_text())
    spec["frames"] = {"fps": 4, "timeout": 20}
    spec["download"]["retries"] = 5  # how downloads run: does not count
    p.write_text(yaml.safe_dump(spec))
    r = invoke(run_cmd, str(p), "--workers", "1")
    assert r.exit_code == 2 and "fps 2.0 -> 4.0" in r.output and "download" not in r.output.split("options")[-1]
    assert len(WorkDir(tmp_path / "work").meta("frames", key)["files"]) == 4
    r = invoke(run_cmd, str(p), "--workers", "2", "--force")
    assert r.exit_code == 0, r.output
    work = WorkDir(tmp_path / "work")
    assert len(work.meta("frames", key)["files"]) == 8
    assert work.read_table("download", 0).stamp == downloaded  # retries do not count: download kept
    r = invoke(run_cmd, str(p), "--workers", "1")  # and now it is what the YAML says: nothing to do
    assert r.exit_code == 0 and "0 items in 0 chunks (1 chunks already done)" in r.output


def test_run_checks_every_section_before_any_work(tmp_path):
    p = _pipeline(tmp_path, shard={"shard_sise": "1GB"})  # a typo in the last stage's section
    r = invoke(run_cmd, str(p), "--workers", "1")
    assert r.exit_code == 2
    assert "section 'shard'" in r.output and "'shard_sise'" in r.output
    assert not (tmp_path / "work").exists()  # nothing imported, nothing downloaded
    spec = yaml.safe_load(p.read_text())
    del spec["shard"]
    for bad, says in (({"tokenizers": {"text": {"vocab_size": "many"}}}, "vocab_size"),
                      ({"tokenizers": {"fit_chunk": 2}}, "fit_chunk"),
                      ({"audio": ["sample_rate", 8000]}, "audio"),
                      ({"quantize": {"batch_clips": 0}}, "batch_clips")):
        p.write_text(yaml.safe_dump({**spec, **bad}))
        r = invoke(run_cmd, str(p), "--workers", "1")
        assert r.exit_code == 2 and says in r.output, r.output
        assert not (tmp_path / "work").exists()


def test_an_option_added_later_counts_only_when_set_off_its_default():
    """Chunks stamped before an option existed are not 'made with other options' while it keeps its default
    (an upgrade does not redo a corpus); set to another value, it counts like any option."""
    from mmdata.filters.rules import FilterConfig
    from mmdata.pipelines.stamps import config_options

    plain = config_options(FilterConfig(min_motion=0.01), ())
    assert "language_min_words" not in plain and "min_language_confidence" not in plain
    assert plain["min_motion"] == 0.01 and plain["measure_size"] == 64  # older options are always there
    assert config_options(FilterConfig(language_min_words=8), ())["language_min_words"] == 8
    assert FilterConfig(min_motion=0.01).thresholds() == {"min_motion": 0.01, "black_range": 0.06,
                                                          "measure_size": 64}
