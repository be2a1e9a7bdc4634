import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmdata.errors import ManifestError
from mmdata.manifests import ManifestConfig, load_manifest
from mmdata.manifests.normalize import source_id


def _keys(clips):
    return [(c.key, c.video_id, c.start_s, c.end_s, c.caption, c.chunk) for c in clips]


def test_csv_with_timestamps_and_youtube_ids(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("video_id,start,end,caption\nabc,0,2.5,one\nabc,1:00,1:05.25,two\nxyz,,,three\n")
    clips = load_manifest(p)
    assert _keys(clips) == [
        ("abc_0_2500", "abc", 0.0, 2.5, "one", 0),
        ("abc_60000_65250", "abc", 60.0, 65.25, "two", 0),
        ("xyz_full", "xyz", None, None, "three", 0),
    ]
    assert clips[0].url == "https://www.youtube.com/watch?v=abc"
    assert [c.row for c in clips] == [1, 2, 3]


@pytest.mark.parametrize("fmt", ["tsv", "jsonl", "parquet"])
def test_other_tabular_formats_give_the_same_table(tmp_path, fmt):
    rows = [{"url": "https://example.com/v/a.mp4", "start": 1.0, "end": 3.0, "text": "hello there"},
            {"url": "https://example.com/v/b.mp4", "start": 0.0, "end": 1.5, "text": "bye"}]
    p = tmp_path / f"m.{fmt}"
    if fmt == "tsv":
        p.write_text("url\tstart\tend\ttext\n" + "".join(f"{r['url']}\t{r['start']}\t{r['end']}\t{r['text']}\n" for r in rows))
    elif fmt == "jsonl":
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), p)
    clips = load_manifest(p)
    a = source_id("https://example.com/v/a.mp4")
    assert a.startswith("a-") and "." not in a
    assert [(c.key, c.text, c.kind) for c in clips] == [
        (f"{a}_1000_3000", "hello there", "video"),
        (f"{source_id('https://example.com/v/b.mp4')}_0_1500", "bye", "video")]


def test_howto100m_json_and_webvid_csv_and_cc3m_tsv(tmp_path):
    h = tmp_path / "caps.json"
    h.write_text(json.dumps({"vid1": {"start": [0, 4.5], "end": [4.5, 9], "text": ["cut onions", "fry them"]}}))
    clips = load_manifest(h)
    assert [(c.key, c.caption) for c in clips] == [("vid1_0_4500", "cut onions"), ("vid1_4500_9000", "fry them")]

    w = tmp_path / "webvid.csv"
    w.write_text("videoid,contentUrl,duration,page_dir,name\n"
                 "1066,https://ak.picdn.net/shutterstock/videos/1066/preview/stock-footage-a.mp4,PT00H00M10S,dir,A cat\n")
    (c,) = load_manifest(w)
    assert (c.video_id, c.caption, c.kind) == ("1066", "A cat", "video")
    assert c.url.endswith("stock-footage-a.mp4") and c.key == "1066_full"

    cc = tmp_path / "cc3m.tsv"
    cc.write_text("a dog on grass\thttps://img.example.com/dog.jpg\nthe sea\thttps://img.example.com/sea.png\n")
    clips = load_manifest(cc)
    assert [(c.caption, c.kind) for c in clips] == [("a dog on grass", "image"), ("the sea", "image")]


def test_chunks_keep_a_sources_clips_together(tmp_path):
    p = tmp_path / "m.csv"
    lines = ["video_id,start,end"] + [f"v{v},{i},{i + 1}" for v, n in ((1, 3), (2, 3), (3, 1)) for i in range(n)]
    p.write_text("\n".join(lines) + "\n")
    clips = load_manifest(p, ManifestConfig(chunk_size=4))
    assert [(c.video_id, c.chunk) for c in clips] == [("v1", 0)] * 3 + [("v2", 1)] * 3 + [("v3", 1)]


@pytest.mark.parametrize("body,row,column,words", [
    ("start,end\n0,1\n", 1, "url", "needs a 'url'"),
    ("video_id,start,end\na,3,2\n", 1, "end", "not after start"),
    ("video_id,start,end\na,0,1\nb,-1,2\n", 2, "start", "negative"),
    ("video_id,start,end\na,zero,1\n", 1, "start", "cannot parse 'zero'"),
    ("video_id,start,end\na,0,1\na,0,1\n", 2, "start", "duplicate clip key 'a_0_1000'"),
    ("video_id,start,end\na,0\n", 1, None, "has 2 fields"),
    ("video_id,kind\na,hologram\n", 1, "kind", "unknown kind"),
])
def test_bad_manifest_errors_name_file_row_and_column(tmp_path, body, row, column, words):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    msg = str(e.value)
    assert str(p) in msg and f"row {row}" in msg and words in msg
    assert e.value.row == row and e.value.column == column


def test_unknown_format_and_empty_file(tmp_path):
    (tmp_path / "m.xml").write_text("<x/>")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        load_manifest(tmp_path / "m.xml")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ManifestError, match="empty"):
        load_manifest(tmp_path / "e.csv")


def test_bad_manifest_writes_nothing_and_exits_2(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("video_id,start,end\na,0,1\nb,5,4\n")
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, "-m", "mmdata.cli", "download", str(p), "--work", str(work)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "row 2" in proc.stderr and "'end'" in proc.stderr
    assert not (work / "clips.parquet").exists()
