"""The work store on local disk and on a real S3-compatible server (moto on 127.0.0.1, through s3fs): the
same operations, packed chunks committed by their table, nothing of an uncommitted chunk visible."""
import json
import tarfile

import pytest

from mmdata.errors import ConfigError
from mmdata.records import Clip, StatusRow
from mmdata.store.fs import Store, local_copy
from mmdata.testing.workdirs import make_work
from mmdata.workdir import WorkDir, table_name


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path, s3):
    if request.param == "local":
        return str(tmp_path / "store")
    return s3.make_bucket(f"b{abs(hash(str(tmp_path))) % 10**8}") + "/work"


def test_store_operations_are_the_same_on_disk_and_on_s3(root):
    st = Store(root)
    assert st.list() == [] and not st.exists("a/x.bin")
    st.write_bytes("a/x.bin", b"0123456789")
    st.write_json("a/y.json", {"k": 1})
    assert st.read_bytes("a/x.bin") == b"0123456789" and st.read_range("a/x.bin", 2, 5) == b"234"
    assert st.read_json("a/y.json") == {"k": 1} and st.size("a/x.bin") == 10
    assert st.list() == ["a"] and st.list("a") == ["x.bin", "y.json"] and st.walk_files() == ["a/x.bin", "a/y.json"]
    st.remove("a/x.bin")
    st.remove("a/never")  # nothing there: no error
    assert st.list("a") == ["y.json"]
    with pytest.raises(FileNotFoundError):
        st.read_bytes("a/x.bin")
    with pytest.raises(ValueError, match="leaves the store"):
        st.read_bytes("../escape")
    st.remove_tree("a")
    assert st.walk_files() == []


def _clips(n=4, per_chunk=2):
    return [Clip(f"v{i}_0_1000", f"v{i}", f"http://h/v{i}.mp4", 0.0, 1.0, chunk=i // per_chunk) for i in range(n)]


def _stage_item(work, key, files, meta):
    tmp = work.temp_item_dir("st", key)
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    work.commit_item(tmp, "st", key, meta)


def test_a_chunk_is_two_objects_readable_by_ranged_reads(root, tmp_path):
    work = WorkDir(root, scratch=tmp_path / "scratch")
    from mmdata.manifests.table import write_clip_table

    write_clip_table(work, _clips())
    _stage_item(work, "v0_0_1000", {"a.txt": b"alpha", "b.bin": bytes(range(256)) * 3}, {"n": 0})
    _stage_item(work, "v1_0_1000", {"a.txt": b"beta"}, {"n": 1})
    assert work.meta("st", "v0_0_1000") is None  # staged is not committed: no reader sees it
    table = work.commit_chunk("st", 0, [StatusRow("v0_0_1000", "ok"), StatusRow("v1_0_1000", "ok")])
    assert sorted(work.store.list("st")) == sorted([table_name(0), table.pack])
    reader = WorkDir(root, scratch=tmp_path / "reader")  # another process, another scratch
    assert reader.meta("st", "v1_0_1000") == {"n": 1}
    assert reader.read_file("st", "v0_0_1000", "b.bin") == bytes(range(256)) * 3
    assert reader.item_files("st", "v1_0_1000") == {"a.txt": b"beta"}
    folder = reader.item_dir("st", "v0_0_1000")
    assert (folder / "a.txt").read_bytes() == b"alpha" and json.loads((folder / "meta.json").read_text()) == {"n": 0}
    assert [r.bytes for r in reader.read_table("st", 0).rows] == [5 + 768, 4]
    # the pack is a plain tar, items in key order
    local = tmp_path / "pack.tar"
    work.store.get_file(f"st/{table.pack}", local)
    with tarfile.open(local) as tar:
        assert tar.getnames() == ["v0_0_1000/a.txt", "v0_0_1000/b.bin", "v1_0_1000/a.txt"]
    reader.close()
    assert not folder.exists()


def test_retry_commit_keeps_old_items_and_drops_the_old_pack(root, tmp_path):
    from mmdata.manifests.table import write_clip_table

    work = WorkDir(root, scratch=tmp_path / "scratch")
    write_clip_table(work, _clips())
    _stage_item(work, "v0_0_1000", {"a.txt": b"kept"}, {"n": 0})
    first = work.commit_chunk("st", 0, [StatusRow("v0_0_1000", "ok"), StatusRow("v1_0_1000", "error", "bad", "x")])
    _stage_item(work, "v1_0_1000", {"a.txt": b"fixed"}, {"n": 1})  # --retry-failed redid only v1
    second = work.commit_chunk("st", 0, [StatusRow("v0_0_1000", "ok"), StatusRow("v1_0_1000", "ok")])
    assert first.pack != second.pack and work.store.list("st") == sorted([table_name(0), second.pack])
    fresh = WorkDir(root, scratch=tmp_path / "r")
    assert fresh.item_files("st", "v0_0_1000") == {"a.txt": b"kept"}
    assert fresh.item_files("st", "v1_0_1000") == {"a.txt": b"fixed"}


def test_same_outputs_give_the_same_pack_bytes_and_name(root, tmp_path):
    from mmdata.manifests.table import write_clip_table

    names = []
    for run in range(2):
        work = WorkDir(f"{root}{run}", scratch=tmp_path / f"s{run}")
        write_clip_table(work, _clips())
        _stage_item(work, "v1_0_1000", {"z.txt": b"z", "a.txt": b"a"}, {"n": 1})
        _stage_item(work, "v0_0_1000", {"a.txt": b"0"}, {"n": 0})
        table = work.commit_chunk("st", 0, [StatusRow("v1_0_1000", "ok"), StatusRow("v0_0_1000", "ok")])
        names.append((table.pack, work.store.read_bytes(f"st/{table.pack}")))
    assert names[0] == names[1]


def test_an_uncommitted_pack_is_invisible_and_a_killed_chunk_resumes_from_scratch(root, tmp_path):
    """Killed after uploading the pack, before the table: readers see nothing of the chunk; the re-run on
    the same machine finds the staged items, commits them, and the orphan pack is replaced."""
    from mmdata.manifests.table import write_clip_table

    work = WorkDir(root, scratch=tmp_path / "scratch")
    write_clip_table(work, _clips())
    work.store.write_bytes("st/chunk-000000-deadbeefdeadbeef.tar", b"half a pack")
    _stage_item(work, "v0_0_1000", {"a.txt": b"done"}, {"n": 0})
    assert WorkDir(root).read_table("st", 0) is None and WorkDir(root).meta("st", "v0_0_1000") is None
    assert work.is_done("st", "v0_0_1000")  # item-level resume: the staged item counts as finished
    table = work.commit_chunk("st", 0, [StatusRow("v0_0_1000", "ok")])
    assert WorkDir(root).meta("st", "v0_0_1000") == {"n": 0} and table.pack in work.store.list("st")
    assert not work.is_done("st", "v0_0_1000")  # staged copy gone once committed


def test_meta_only_items_need_no_pack(root, tmp_path):
    from mmdata.manifests.table import write_clip_table

    work = WorkDir(root, scratch=tmp_path / "scratch")
    write_clip_table(work, _clips())
    _stage_item(work, "v0_0_1000", {}, {"text": "hello"})
    table = work.commit_chunk("st", 0, [StatusRow("v0_0_1000", "ok")])
    assert table.pack is None and work.store.list("st") == [table_name(0)]
    assert WorkDir(root).meta("st", "v0_0_1000") == {"text": "hello"}


def test_a_work_folder_of_the_old_layout_is_refused_with_how_to_rebuild(tmp_path):
    old = tmp_path / "old"
    (old / "download" / "vid").mkdir(parents=True)
    (old / "download" / "vid" / "meta.json").write_text("{}")
    (old / "status" / "download").mkdir(parents=True)
    (old / "clips.parquet").write_bytes(b"")
    with pytest.raises(ConfigError, match="made by mmdata 0.1.*new --work folder"):
        WorkDir(old).clips()
    work = make_work(tmp_path / "new", _clips())
    assert json.loads((work.root / "layout.json").read_text())["layout"] == 2


def test_local_copy_of_a_stored_folder_follows_changes(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("MMDATA_SCRATCH", str(tmp_path / "scratch"))
    url = s3.make_bucket("copies") + "/tok"
    st = Store(url)
    st.write_bytes("text/config.json", b"{}")
    first = local_copy(url)
    assert (first / "text" / "config.json").read_bytes() == b"{}"
    st.write_bytes("speech/config.json", b'{"k": 2}')
    assert (local_copy(url) / "speech" / "config.json").read_bytes() == b'{"k": 2}'
