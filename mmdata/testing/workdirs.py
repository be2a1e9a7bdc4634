"""Build work folders by hand for stage tests: a clip table and 'downloaded' sources, committed to the
work store as the download stage commits them."""
from __future__ import annotations

import shutil
from pathlib import Path

from mmdata.manifests.table import write_clip_table
from mmdata.records import Clip
from mmdata.workdir import WorkDir, parquet_bytes, read_parquet_bytes


def add_downloaded(work: WorkDir, video_id: str, media: Path, kind: str = "video",
                   subtitles: list[tuple[Path, str, str]] = (), info: dict | None = None) -> Path:
    """Place `media` as if the download stage had fetched it. `subtitles`: (path, lang, origin) where
    origin is manual | auto | manifest."""
    tmp = work.temp_item_dir("download", video_id)
    media = Path(media)
    name = "media" + media.suffix
    shutil.copyfile(media, tmp / name)
    subs = []
    for path, lang, origin in subtitles:
        fname = f"subs.{lang}.{origin}{Path(path).suffix}"
        shutil.copyfile(path, tmp / fname)
        subs.append({"file": fname, "lang": lang, "origin": origin, "ext": Path(path).suffix.lstrip(".")})
    meta = {"media": name, "kind": kind, "subtitles": subs, "info": info or {}, "bytes": media.stat().st_size}
    work.put_item("download", video_id, tmp, meta)
    return work.item_dir("download", video_id)


def make_work(root: Path, clips: list[Clip]) -> WorkDir:
    work = WorkDir(root)
    write_clip_table(work, clips)
    return work


def work_with(root: Path, media: Path, windows=((None, None),), kind: str = "video", video_id: str = "src"
              ) -> tuple[WorkDir, list[Clip]]:
    """A work folder with one downloaded source and one clip per (start_s, end_s) window."""
    clips = [Clip(key=f"{video_id}_{i}", video_id=video_id, url=str(media), start_s=s, end_s=e, kind=kind)
             for i, (s, e) in enumerate(windows)]
    work = make_work(root, clips)
    add_downloaded(work, video_id, media, kind=kind)
    return work, clips


def copy_work(work: WorkDir, dst: Path, drop: tuple[str, ...] = ()) -> WorkDir:
    """A copy of a local work folder without the stages in `drop` (and without its scratch)."""
    shutil.copytree(work.root, dst, ignore=shutil.ignore_patterns(".scratch", *drop))
    return WorkDir(dst)


def stage_files(work: WorkDir, stage: str) -> dict[str, bytes]:
    """Every committed file of a stage, as `<key>/<name>`: what tests compare byte for byte."""
    out: dict[str, bytes] = {}
    for chunk in work.table_chunks(stage):
        for key in sorted(work.read_table(stage, chunk).spans):
            out.update({f"{key}/{name}": data for name, data in sorted(work.item_files(stage, key).items())})
    return out


def edit_item(work: WorkDir, stage: str, key: str, files: dict[str, bytes | None] | None = None,
              meta: dict | None = None) -> None:
    """Change a committed item (to damage it on purpose): files replaced (None: removed), a new meta; its
    chunk is committed again."""
    have = work.item_files(stage, key)
    for name, data in (files or {}).items():
        if data is None:
            have.pop(name, None)
        else:
            have[name] = data
    tmp = work.temp_item_dir(stage, key)
    for n, d in have.items():
        (tmp / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp / n).write_bytes(d)
    work.put_item(stage, key, tmp, work.meta(stage, key) if meta is None else meta)


def replace_file(work: WorkDir, stage: str, key: str, name: str, data: bytes) -> None:
    edit_item(work, stage, key, {name: data})


def edit_table_row(work: WorkDir, stage: str, key: str, **columns: str | None) -> None:
    """Overwrite columns (meta, span: JSON text) of one row of a committed chunk table, as a damaged disk or a
    hand edit would, with no check: for tests of what readers make of a damaged table."""
    import pyarrow as pa

    rel = work.table_rel(stage, work.chunk_of(stage, key))
    table = read_parquet_bytes(work.store.read_bytes(rel))
    rows = [{**r, **columns} if r["key"] == key else r for r in table.to_pylist()]
    work.store.write_bytes(rel, parquet_bytes(pa.Table.from_pylist(rows, schema=table.schema)))


def cut_object(work: WorkDir, rel: str, keep_fraction: float) -> None:
    """Truncate an object of the work store (a chunk table, a pack) to `keep_fraction` of its bytes."""
    data = work.store.read_bytes(rel)
    work.store.write_bytes(rel, data[: int(len(data) * keep_fraction)])
