import io
import json
import subprocess
import sys

import numpy as np

from mmdata.shards.index import INDEX
from mmdata.shards.verify import verify

from tests.shards.conftest import rewrite_shard


def _problems(out):
    return [(p.shard, p.key, p.what) for p in verify(out, progress=False).problems]


def test_clean_corpus_passes(built):
    report = verify(built.out, progress=False)
    assert report.ok and report.exit_code == 0 and (report.shards, report.samples) == (3, 7)


def test_truncated_shard(built_copy):
    path = built_copy / "shard-000000-000001.tar"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problems = _problems(built_copy)
    whats = [w for s, _, w in problems if s == "shard-000000-000001.tar"]
    assert any("bytes, index.json says" in w for w in whats)
    assert any("sha256" in w for w in whats)
    assert any("breaks after" in w or "unreadable" in w for w in whats)
    assert any("samples read, index.json says 3" in w for w in whats)
    assert {s for s, _, _ in problems} == {"shard-000000-000001.tar"}


def test_truncated_at_a_member_boundary(built_copy):
    """Cut exactly after a complete member: tarfile alone would read a shorter shard without complaint."""
    import tarfile

    path = built_copy / "shard-000000-000000.tar"
    with tarfile.open(path) as tf:
        members = tf.getmembers()
    cut = members[12].offset  # the header of a member in the second sample
    path.write_bytes(path.read_bytes()[:cut])
    whats = [w for s, _, w in _problems(built_copy) if s == "shard-000000-000000.tar"]
    assert any("without its end-of-archive blocks" in w for w in whats), whats


def test_flipped_byte(built_copy):
    path = built_copy / "shard-000000-000002.tar"
    data = bytearray(path.read_bytes())
    data[700] ^= 0x01  # inside the first member's data (the json)
    path.write_bytes(bytes(data))
    problems = _problems(built_copy)
    assert problems and {s for s, _, _ in problems} == {"shard-000000-000002.tar"}
    assert any("sha256" in w and "corrupted" in w for _, _, w in problems)


def test_flipped_byte_in_a_header(built_copy):
    import tarfile

    path = built_copy / "shard-000000-000002.tar"
    with tarfile.open(path) as tf:
        second = tf.getmembers()[1].offset
    data = bytearray(path.read_bytes())
    data[second + 3] ^= 0x20  # the second member's name: its header checksum no longer matches
    path.write_bytes(bytes(data))
    whats = [w for _, _, w in _problems(built_copy)]
    assert any("sha256" in w for w in whats) and any("damaged: unreadable tar header" in w for w in whats)


def test_sample_missing_a_field(built_copy):
    victim = "vid000_2000_4000"
    rewrite_shard(built_copy, "shard-000000-000000.tar",
                  lambda k, f: {n: b for n, b in f.items() if not (k == victim and n == "ttok.npy")})
    assert _problems(built_copy) == [("shard-000000-000000.tar", victim, "missing field ttok.npy")]


def test_token_id_out_of_range(built_copy):
    victim = "vid001_0_2000"

    def edit(key, fields):
        if key == victim:
            buf = io.BytesIO()
            np.save(buf, np.array([3, 1000, 7], dtype=np.int32))  # text vocabulary is 1000
            fields["ttok.npy"] = buf.getvalue()
        return fields

    rewrite_shard(built_copy, "shard-000000-000000.tar", edit)
    assert _problems(built_copy) == [("shard-000000-000000.tar", victim, "ttok.npy: token id 1000 >= vocabulary size 1000")]


def test_wrong_dtype_and_word_outside_clip(built_copy):
    def edit(key, fields):
        if key == "vid000_0_2000":
            buf = io.BytesIO()
            np.save(buf, np.zeros((4, 14, 14), dtype=np.int64))
            fields["vtok.npy"] = buf.getvalue()
            meta = json.loads(fields["json"])
            meta["words"][0]["end"] = 9.0
            fields["json"] = json.dumps(meta).encode()
        return fields

    rewrite_shard(built_copy, "shard-000000-000000.tar", edit)
    whats = [w for _, k, w in _problems(built_copy) if k == "vid000_0_2000"]
    assert len(whats) == 2
    assert "vtok.npy: int64 [4, 14, 14], expected uint16 with 3 dims" in whats
    assert "words[0] 'red' at 0.05-9.0 s outside the clip (0-2.0 s) or reversed" in whats


def test_missing_shard_and_stray_files(built_copy):
    (built_copy / "shard-000000-000001.tar").unlink()
    (built_copy / "extra-000000.tar").write_bytes(b"")
    (built_copy / ".shard-000000-000003.tar.tmp").write_bytes(b"")
    index = json.loads((built_copy / INDEX).read_text())
    index["shards"][2]["samples"] = 5
    (built_copy / INDEX).write_text(json.dumps(index))
    problems = _problems(built_copy)
    whats = {(s, w) for s, _, w in problems}
    assert ("shard-000000-000001.tar", "listed in index.json but missing") in whats
    assert ("extra-000000.tar", "shard file not listed in index.json") in whats
    assert any(s == ".shard-000000-000003.tar.tmp" for s, _ in whats)
    assert ("shard-000000-000002.tar", "1 samples read, index.json says 5") in whats
    assert any(s == "sizes.json" for s, _ in whats)


def test_cli_exit_codes(built, built_copy):
    run = lambda out: subprocess.run([sys.executable, "-c", "from mmdata.commands.shards import verify_cmd; "
                                      "verify_cmd()", str(out), "--no-progress"], capture_output=True, text=True)
    ok = run(built.out)
    assert ok.returncode == 0 and "7 samples read, 0 problems" in ok.stdout and ok.stdout.strip().endswith("OK")
    path = built_copy / "shard-000000-000001.tar"
    path.write_bytes(path.read_bytes()[:5000])
    bad = run(built_copy)
    assert bad.returncode == 1 and "shard-000000-000001.tar" in bad.stdout and "FAILED" in bad.stdout


def test_a_key_in_two_shards_is_reported(built_copy):
    """Key ranges of chunks may overlap (chunks follow the manifest), but a key is in one sample only."""
    import shutil

    from mmdata.shards.reader import iter_samples
    from mmdata.shards.writer import ShardWriter
    from mmdata.utils import sha256_file

    key, fields = next(iter_samples(built_copy / "shard-000000-000000.tar"))
    with ShardWriter(built_copy / "dup", "x", max_bytes=1 << 40, max_samples=1 << 30) as w:
        w.write(key, fields)
    shutil.move(built_copy / "dup" / "x-000000.tar", built_copy / "shard-000000-000002.tar")
    shutil.rmtree(built_copy / "dup")
    index = json.loads((built_copy / INDEX).read_text())
    last = index["shards"][2]
    path = built_copy / last["name"]
    last.update(bytes=path.stat().st_size, sha256=sha256_file(path), first_key=key, last_key=key)
    (built_copy / INDEX).write_text(json.dumps(index))
    assert _problems(built_copy) == [("shard-000000-000002.tar", key,
                                      "key duplicated: an earlier shard has a sample with it")]
