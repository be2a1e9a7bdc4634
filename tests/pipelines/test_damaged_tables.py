"""A damaged chunk table (truncated, zero bytes) of the work store: `mmdata run` and a stage's command redo that
chunk's stage (and what read it) as if it had never been done, and say so in the summary, naming the table."""
from __future__ import annotations

import yaml
from click.testing import CliRunner

from mmdata.commands.media import frames_cmd
from mmdata.commands.run import run_cmd
from mmdata.testing.media import make_video
from mmdata.testing.workdirs import cut_object, stage_files
from mmdata.workdir import WorkDir


def invoke(cmd, *args):
    return CliRunner().invoke(cmd, [*args, "--no-progress"], catch_exceptions=False)


def _pipeline(tmp_path):
    (tmp_path / "media").mkdir()
    for i in range(2):
        make_video(tmp_path / "media" / f"v{i}.mp4", duration_s=1.0, size=(96, 64), tone_hz=300 + 200 * i)
    rows = "".join(f"v{i},{tmp_path / 'media' / f'v{i}.mp4'},0,1,hello\n" for i in range(2))
    (tmp_path / "m.csv").write_text("video_id,url,start_s,end_s,caption\n" + rows)
    spec = {"manifest": "m.csv", "work": "work", "out": "out", "stages": ["download", "frames", "audio"],
            "chunk_size": 1, "download": {"allow_local": True}, "frames": {"fps": 2, "size": 64}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "p.yaml"


def test_run_redoes_a_truncated_and_a_zero_byte_chunk_table(tmp_path):
    p = _pipeline(tmp_path)
    r = invoke(run_cmd, str(p), "--workers", "1")
    assert r.exit_code == 0, r.output
    work = WorkDir(tmp_path / "work")
    frames, audio = stage_files(work, "frames"), stage_files(work, "audio")
    frames_stamp = work.read_table("frames", 1).stamp
    cut_object(work, work.table_rel("frames", 1), 0.5)  # chunk 1's frames: truncated
    work.store.write_bytes(work.table_rel("download", 0), b"")  # chunk 0's download: zero bytes

    r = invoke(run_cmd, str(p), "--workers", "1")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    table = f"{work.root}/frames/chunk-000001.parquet does not read as a chunk table"
    assert "redone: 1 whose chunk table was damaged chunk(s)" in r.output
    assert f"damaged: {table}" in r.output
    assert f"damaged: {work.root}/download/chunk-000000.parquet does not read" in r.output
    # download's chunk 0 redone takes frames' and audio's chunk 0 with it (they read it)
    assert "frames: 2 items — ok 2, failed 0" in r.output and "audio: 2 items — ok 2, failed 0" in r.output
    work = WorkDir(tmp_path / "work")
    assert stage_files(work, "frames") == frames and stage_files(work, "audio") == audio  # the same bytes
    assert work.read_table("frames", 1).stamp == frames_stamp
    assert sorted(n for n in work.store.list("frames") if n.endswith(".tar")) == \
        sorted({f"{t.pack}" for t in (work.read_table("frames", c) for c in (0, 1))})  # no stale pack

    r = invoke(run_cmd, str(p), "--workers", "1")  # and then nothing is left to do
    assert r.exit_code == 0 and "redone" not in r.output and "0 items in 0 chunks (2 chunks already done)" in r.output


def test_a_stage_command_redoes_its_damaged_chunk(tmp_path):
    p = _pipeline(tmp_path)
    assert invoke(run_cmd, str(p), "--workers", "1").exit_code == 0
    work = WorkDir(tmp_path / "work")
    frames = stage_files(work, "frames")
    work.store.write_bytes(work.table_rel("frames", 0), b"\x00garbage, not parquet")
    r = invoke(frames_cmd, "--work", str(work.root), "--fps", "2", "--size", "64", "--workers", "1")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "1 items in 1 chunks (1 chunks already done)" in r.output
    assert "redone: 1 whose chunk table was damaged chunk(s)" in r.output
    assert stage_files(WorkDir(work.root), "frames") == frames
