"""A work store damaged after the stages ran (a chunk table row or a whole table that does not read, a pack cut
short or gone, a stage's file swapped for a real broken one) gives `mmdata shard` rejected clips with a
reason, never a crash; the clips it does not touch become samples as before."""
import json
import shutil
import subprocess
import sys

import pytest

from mmdata.testing.corpus import make_corpus
from mmdata.testing.workdirs import cut_object, edit_table_row, replace_file
from mmdata.workdir import WorkDir

CLIPS = 6  # one chunk; clips 0, 1, 5 have every modality, 2 vision+language, 3 speech+language, 4 vision+speech
FIRST = "vid000_0_2000"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("pristine"), CLIPS)


@pytest.fixture
def corpus(pristine, tmp_path):
    """A copy of the corpus this test may damage."""
    shutil.copytree(pristine.work.root.parent, tmp_path / "c")
    return tmp_path / "c"


def shard(root, out):
    return subprocess.run([sys.executable, "-m", "mmdata.cli", "shard", "--work", str(root / "work"), "--out",
                           str(out), "--keep", "frames", "--keep", "audio",
                           "--workers", "1", "--no-progress"], capture_output=True, text=True)


def pack(work, stage):
    return f"{stage}/{work.read_table(stage, 0).pack}"


def _meta_not_json(work, realmedia):
    edit_table_row(work, "quantize", FIRST, meta="{not json")


def _meta_a_list(work, realmedia):
    edit_table_row(work, "audio", FIRST, meta="[1, 2]")


def _span_not_json(work, realmedia):
    edit_table_row(work, "frames", FIRST, span='{"offset": ')


def _frames_table_cut(work, realmedia):
    cut_object(work, work.table_rel("frames", 0), 0.5)


def _frame_is_a_broken_video(work, realmedia):
    replace_file(work, "frames", FIRST, "000000.jpg", (realmedia / "exoplayer_invalid-bitstream.webm").read_bytes())


def _audio_is_a_truncated_mp4(work, realmedia):
    replace_file(work, "audio", FIRST, "audio.flac", (realmedia / "mutagen_truncated-64bit.mp4").read_bytes())


def _quantize_pack_gone(work, realmedia):
    work.store.remove(pack(work, "quantize"))


def _audio_pack_cut(work, realmedia):
    cut_object(work, pack(work, "audio"), 0.5)


@pytest.mark.parametrize("damage,rejected", [
    (_meta_not_json, {"unreadable_output": 1}),
    (_meta_a_list, {"unreadable_output": 1}),
    (_span_not_json, {"unreadable_output": 1}),
    (_frames_table_cut, {"unreadable_output": CLIPS}),  # every clip reads its frames output, if only to see none
    (_frame_is_a_broken_video, {"corrupt_file": 1}),
    (_audio_is_a_truncated_mp4, {"corrupt_file": 1}),
    (_quantize_pack_gone, {"missing_output_file": CLIPS}),
    (_audio_pack_cut, None),  # the clips whose audio lay in the lost half
])
def test_damage_is_a_rejected_clip_with_a_reason(corpus, tmp_path, realmedia, damage, rejected):
    damage(WorkDir(corpus / "work"), realmedia)
    proc = shard(corpus, tmp_path / "out")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    got = index["corpus"]["rejected"]
    if rejected is None:  # audio: clips 0, 1, 3, 4, 5; the pack holds them in key order
        assert list(got) == ["missing_output_file"] and 1 <= got["missing_output_file"] <= 5
    else:
        assert got == rejected
    assert index["samples"] + sum(got.values()) == CLIPS
    record = json.loads((tmp_path / "out" / ".chunks" / "chunk-000000.json").read_text())
    reason = next(iter(got))
    assert record["examples"] and all(f": {reason}: " in e for e in record["examples"])


def test_a_clip_table_that_does_not_read_is_one_error_line(corpus, tmp_path):
    cut_object(WorkDir(corpus / "work"), "clips.parquet", 0.3)
    proc = shard(corpus, tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "clips.parquet does not read as a clip table" in proc.stderr


def test_stats_reports_damaged_chunk_tables(corpus, tmp_path):
    """`mmdata stats` over a work store with a truncated and a zero-byte chunk table: the tables named with
    why, their clips counted (unreadable_output), no traceback."""
    out = tmp_path / "out"
    assert shard(corpus, out).returncode == 0
    work = WorkDir(corpus / "work")
    cut_object(work, work.table_rel("frames", 0), 0.5)
    work.store.write_bytes(work.table_rel("quantize", 0), b"")
    for args in ([str(out), "--work", str(corpus / "work")], ["--work", str(corpus / "work")]):
        proc = subprocess.run([sys.executable, "-m", "mmdata.cli", "stats", *args, "--no-progress"],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        text = proc.stdout
        assert "damaged chunk tables: 2 (their items are counted as unreadable_output" in text
        assert f"{work.root}/frames/chunk-000000.parquet does not read as a chunk table: " in text
        assert f"{work.root}/quantize/chunk-000000.parquet does not read as a chunk table: " in text
        assert "Parquet file size is 0 bytes" in text
        # every clip stops at the first damaged stage (frames)
        assert [ln.split()[:2] for ln in text.splitlines() if ln.startswith("  frames ")] == [["frames", str(CLIPS)]]
        if args[0] == str(out):
            assert "frames:unreadable_output" in text and "quantize:unreadable_output" in text
