"""Manifests through `mmdata download`: rows are never lost, merged or renumbered, and a bad manifest is one
error line (file, row, column) with exit code 2, never a traceback. Sources are real local images."""
import hashlib
import json
import subprocess
import sys
from itertools import count

import pyarrow.parquet as pq
import pytest

from mmdata.errors import ManifestError
from mmdata.manifests import load_manifest
from mmdata.manifests.normalize import source_id
from mmdata.testing.media import jpeg_bytes, scene
from mmdata.utils import id_key, safe_key, sha256_file
from mmdata.workdir import WorkDir


def download(manifest, work):
    return subprocess.run([sys.executable, "-m", "mmdata.cli", "download", str(manifest), "--work", str(work),
                           "--allow-local", "--workers", "1", "--no-progress"], capture_output=True, text=True)


def clip_table(work):
    return pq.read_table(work / "clips.parquet").to_pylist()


@pytest.fixture
def images(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.jpg"
        p.write_bytes(jpeg_bytes(scene(i, (32, 32))))
        paths.append(p)
    return paths


def refused(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and all(w in proc.stderr for w in words), proc.stderr
    return proc.stderr


def test_tsv_quotes_are_plain_characters(tmp_path, images):
    """CC3M-style rows whose captions start with a quote (closed or never) stay three rows, captions verbatim."""
    captions = ['"A dog, 5" tall', '"open quote never closed', 'plain "inner" quotes']
    m = tmp_path / "cc3m.tsv"
    m.write_text("".join(f"{c}\t{p}\n" for c, p in zip(captions, images)))
    proc = download(m, tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    rows = clip_table(tmp_path / "work")
    assert [(r["caption"], r["url"], r["row"]) for r in rows] == [(c, str(p), i) for i, (c, p) in
                                                                  enumerate(zip(captions, images), start=1)]
    assert "ok 3, failed 0" in proc.stdout


def test_tsv_with_a_header_keeps_quotes_too(tmp_path):
    """Common Voice sentences are quoted text, not CSV quoting."""
    m = tmp_path / "cv.tsv"
    m.write_text('path\tsentence\na.mp3\t"Go," he said.\nb.mp3\tDone\n')
    assert [c.text for c in load_manifest(m)] == ['"Go," he said.', "Done"]


def test_header_less_row_with_one_field_names_file_row_and_column(tmp_path, images):
    m = tmp_path / "cc3m.tsv"
    m.write_text(f"a cat\t{images[0]}\njust a caption\n")
    err = refused(download(m, tmp_path / "work"), str(m), "row 2", "column 'url'", "has 1 field")
    assert "caption, url" in err
    assert not (tmp_path / "work" / "clips.parquet").exists()


@pytest.mark.parametrize("items,what", [([{"url": "x.mp4"}, 7], "int 7"), (["a.mp4"], 'str "a.mp4"')])
def test_json_list_of_non_objects_names_file_and_row(tmp_path, items, what):
    m = tmp_path / "m.json"
    m.write_text(json.dumps(items))
    refused(download(m, tmp_path / "work"), str(m), f"row {len(items)}", "must be a JSON object", what)


def test_a_list_or_object_as_a_value_names_its_column(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"url": "https://example.com/a.mp4", "caption": ["two", "captions"]}) + "\n")
    refused(download(m, tmp_path / "work"), str(m), "row 1", "column 'caption'", "got list")


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl"])
def test_row_numbers_count_blank_lines(tmp_path, images, suffix):
    sep = "," if suffix == "csv" else "\t"
    if suffix == "jsonl":
        lines = [json.dumps({"url": str(p), "caption": f"c{i}"}) for i, p in enumerate(images[:2])]
        bad = json.dumps({"url": str(images[2]), "start": 5, "end": 4})
        good, bad_text, first = [lines[0], "", "  ", lines[1]], lines + ["", bad], 1
    else:
        head = sep.join(["url", "caption", "start", "end"])
        lines = [sep.join([str(p), f"c{i}", "", ""]) for i, p in enumerate(images[:2])]
        bad = sep.join([str(images[2]), "c2", "5", "4"])
        good, bad_text, first = [head, lines[0], "", "  ", lines[1]], [head] + lines + ["", bad], 1
    m = tmp_path / f"m.{suffix}"
    m.write_text("\n".join(good) + "\n")
    proc = download(m, tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    assert [r["row"] for r in clip_table(tmp_path / "work")] == [first, first + 3]  # lines 1 and 4 below the header

    m.write_text("\n".join(bad_text) + "\n")
    refused(download(m, tmp_path / "work2"), "row 4", "column 'end'", "not after start")


def test_ids_that_sanitise_alike_stay_distinct_sources(tmp_path, images):
    """`a.b`, `a b` and `a-b` are three videos: three keys (dot-free), each clip with its own media."""
    m = tmp_path / "m.csv"
    ids = ["a.b", "a b", "a-b"]
    m.write_text("video_id,url,caption\n" + "".join(f"{v},{p},{v}\n" for v, p in zip(ids, images)))
    work = tmp_path / "work"
    proc = download(m, work)
    assert proc.returncode == 0, proc.stderr
    keys = [r["video_id"] for r in clip_table(work)]
    assert keys[2] == "a-b"  # an id that is already a key stays as it was
    assert keys[0].startswith("a-b-") and keys[1].startswith("a-b-") and len(set(keys)) == 3
    assert all("." not in k and " " not in k for k in keys)
    w = WorkDir(work)
    for key, image in zip(keys, images):
        meta = w.meta("download", key)
        assert sha256_file(w.item_dir("download", key) / meta["media"]) == sha256_file(image)
    # the same manifest gives the same keys
    assert [c.video_id for c in load_manifest(m)] == keys


def test_id_keys_are_deterministic_and_only_change_ids_that_needed_it():
    assert id_key("abc_DEF-1") == safe_key("abc_DEF-1") == "abc_DEF-1"
    long = "x" * 300
    assert id_key(long) == safe_key(long)  # over-long clean ids keep their old key
    assert id_key("a.b") == id_key("a.b") != id_key("a b")
    assert id_key("a.b").startswith("a-b-") and len(id_key("a.b")) == len("a-b-") + 10
    assert id_key("...").startswith("x-") and id_key("-a-").startswith("a-")


def test_one_id_with_two_urls_is_refused(tmp_path, images):
    m = tmp_path / "m.csv"
    m.write_text(f"video_id,url,start,end\nv1,{images[0]},0,1\nv2,{images[1]},0,1\nv1,{images[2]},1,2\n")
    err = refused(download(m, tmp_path / "work"), str(m), "row 3", "column 'url'", "'v1'")
    assert str(images[0]) in err and str(images[2]) in err and "row 1" in err
    assert not (tmp_path / "work" / "clips.parquet").exists()


@pytest.mark.parametrize("column,second", [("kind", "image"), ("subtitles", "b.vtt")])
def test_one_source_with_two_kinds_or_subtitles_is_refused(tmp_path, column, second):
    m = tmp_path / "m.csv"
    m.write_text(f"video_id,start,end,{column}\nv1,0,1,{'video' if column == 'kind' else 'a.vtt'}\n"
                 f"v1,1,2,{second}\n")
    with pytest.raises(ManifestError, match=f"row 2, column '{column}'.*row 1"):
        load_manifest(m)


def test_youtube_url_forms_of_one_video_are_one_source(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("video_id,url,start,end\nabc,,0,1\nabc,https://youtu.be/abc,1,2\n"
                 ",https://www.youtube.com/watch?v=abc&t=5,2,3\n")
    assert {c.video_id for c in load_manifest(m)} == {"abc"}


def test_urls_whose_short_hashes_meet_get_distinct_keys(tmp_path):
    """Without an id, a source is named by its URL; two URLs whose 8-digit hashes collide (found by search,
    as a LAION-size manifest would) still become two sources, the second with a longer hash."""
    seen = {}
    for i in count():
        url = f"https://img.example.com/{i}/image.jpg"
        h = hashlib.sha1(url.encode()).hexdigest()[:8]
        if h in seen:
            break
        seen[h] = url
    a, b = seen[h], url
    m = tmp_path / "m.csv"
    m.write_text(f"url,start,end\n{a},0,1\n{b},0,1\n{a},1,2\n")
    clips = load_manifest(m)
    assert source_id(a) == source_id(b)
    by_row = {c.row: c.video_id for c in clips}
    assert [by_row[r] for r in (1, 2, 3)] == [source_id(a), source_id(b, digits=16), source_id(a)]
