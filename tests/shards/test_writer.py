import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from mmdata.shards.reader import iter_samples
from mmdata.shards.writer import RECORD, ShardWriter, encode_sample


def _samples(n: int, size: int = 3000):
    for i in range(n):
        yield f"key{i:04d}", {"json": b'{"i": %d}' % i, "txt": f"text {i}".encode(),
                              "bin": bytes((i + j) % 256 for j in range(size))}


def test_bytes_equal_tarfile_addfile(tmp_path):
    """The writer produces exactly what tarfile.addfile writes with the fixed metadata."""
    with ShardWriter(tmp_path / "a", "s", max_bytes=1 << 30, max_samples=100) as w:
        for key, fields in _samples(5):
            w.write(key, fields)
    ref = tmp_path / "ref.tar"
    with tarfile.open(ref, "w", format=tarfile.PAX_FORMAT) as tf:
        for key, fields in _samples(5):
            for ext in ("json", "txt", "bin"):  # json, txt first, then the rest sorted
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode, info.uname, info.gname = len(fields[ext]), 0, 0o644, "", ""
                tf.addfile(info, io.BytesIO(fields[ext]))
    assert (tmp_path / "a" / "s-000000.tar").read_bytes() == ref.read_bytes()


def test_members_have_fixed_metadata_and_order(tmp_path):
    with ShardWriter(tmp_path, "s") as w:
        w.write("k1", {"zz.jpg": b"z", "ttok.npy": b"t", "json": b"{}", "vtok.npy": b"v", "txt": b"x",
                       "stok.npy": b"s", "flac": b"f"})
    shards = w.close()
    with tarfile.open(tmp_path / shards[0].name) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["k1.json", "k1.txt", "k1.vtok.npy", "k1.stok.npy", "k1.ttok.npy",
                                         "k1.flac", "k1.zz.jpg"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_caps_sha_and_index_fields(tmp_path):
    one = len(encode_sample(*next(_samples(1))))
    cap = 3 * one + 2 * 512 + RECORD  # room for 3 samples plus the archive end, not for 4
    with ShardWriter(tmp_path, "p", max_bytes=cap, max_samples=1000) as w:
        for key, fields in _samples(10):
            w.write(key, fields)
    shards = w.close()
    assert [s.samples for s in shards] == [3, 3, 3, 1]
    assert [s.name for s in shards] == [f"p-{i:06d}.tar" for i in range(4)]
    for s in shards:
        data = (tmp_path / s.name).read_bytes()
        assert len(data) == s.bytes <= cap and len(data) % RECORD == 0
        assert hashlib.sha256(data).hexdigest() == s.sha256
    assert (shards[1].first_key, shards[1].last_key) == ("key0003", "key0005")
    with ShardWriter(tmp_path / "n", "p", max_bytes=1 << 30, max_samples=4) as w:
        for key, fields in _samples(10):
            w.write(key, fields)
    assert [s.samples for s in w.close()] == [4, 4, 2]
    assert not list(tmp_path.glob(".*.tmp"))


def test_oversized_sample_gets_its_own_shard(tmp_path):
    with ShardWriter(tmp_path, "p", max_bytes=20_000, max_samples=100) as w:
        w.write("a", {"bin": b"x" * 100})
        w.write("b", {"bin": b"x" * 50_000})
        w.write("c", {"bin": b"x" * 100})
    assert [(s.first_key, s.samples) for s in w.close()] == [("a", 1), ("b", 1), ("c", 1)]


@pytest.mark.parametrize("key,fields", [("a.b", {"json": b""}), ("a/b", {"json": b""}), ("", {"json": b""}),
                                        ("ok", {"JSON": b""}), ("ok", {"a/b": b""}), ("ok", {".x": b""})])
def test_rejects_unsafe_keys_and_fields(tmp_path, key, fields):
    with pytest.raises(ValueError):
        encode_sample(key, fields)


def test_exception_removes_unfinished_shard(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path, "p", max_samples=2) as w:
            for key, fields in _samples(3):
                w.write(key, fields)
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p-000000.tar"]


WRITER_SCRIPT = """
import sys, time
from mmdata.shards.writer import ShardWriter
w = ShardWriter(sys.argv[1], "shard", max_bytes=1 << 30, max_samples=2)
for i in range(10_000):
    w.write(f"k{i:05d}", {"json": b"{}", "bin": bytes([i % 256]) * 200_000})
    print(i, flush=True)
    time.sleep(0.02)
"""


def _run_and_kill(out, after_sample: int, wait_for: list) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if int(line) == after_sample:
                break
        deadline = time.monotonic() + 30
        while not all(p.exists() and p.stat().st_size > 0 for p in wait_for) and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return proc


def test_kill_mid_write_leaves_no_partial_shard_under_final_name(tmp_path):
    """SIGKILL a real writer process while shard 1 is being written: shard 0 is complete under its final
    name, shard 1 exists only under its temporary name."""
    tmp = tmp_path / ".shard-000001.tar.tmp"
    proc = _run_and_kill(tmp_path, 2, [tmp_path / "shard-000000.tar", tmp])
    assert proc.returncode == -signal.SIGKILL
    assert sorted(os.listdir(tmp_path)) == [".shard-000001.tar.tmp", "shard-000000.tar"]
    keys = [k for k, _ in iter_samples(tmp_path / "shard-000000.tar")]  # strict reader: complete archive
    assert keys == ["k00000", "k00001"]


@pytest.mark.parametrize("after", [0, 1, 3, 4, 7])
def test_kill_at_any_point_every_final_shard_is_complete(tmp_path, after):
    proc = _run_and_kill(tmp_path, after, [])
    assert proc.returncode == -signal.SIGKILL
    finals = sorted(tmp_path.glob("shard-*.tar"))
    assert len(finals) <= (after + 1) // 2
    for i, path in enumerate(finals):
        assert [k for k, _ in iter_samples(path)] == [f"k{2 * i:05d}", f"k{2 * i + 1:05d}"]
