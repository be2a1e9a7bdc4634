"""The clip table: the normalised manifest, one row per clip, written once, atomically."""
from __future__ import annotations

from pathlib import Path

from mmdata.records import Clip
from mmdata.workdir import WorkDir, parquet_bytes

CLIP_COLUMNS = None  # schema follows Clip's fields; built lazily to keep pyarrow import local


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("key", pa.string()), ("video_id", pa.string()), ("url", pa.string()),
        ("start_s", pa.float64()), ("end_s", pa.float64()),
        ("caption", pa.string()), ("text", pa.string()), ("subtitles", pa.string()),
        ("kind", pa.string()), ("chunk", pa.int64()), ("row", pa.int64()),
    ])


def write_clip_table(work: WorkDir, clips: list[Clip]) -> str:
    import pyarrow as pa

    table = pa.Table.from_pylist([c.to_dict() for c in clips], schema=_schema())
    work.init_layout()
    work.store.write_bytes(work.CLIPS, parquet_bytes(table))
    work.forget_clips()
    return work.store.join(work.CLIPS)


def import_manifest(work: WorkDir, manifest: Path, chunk_size: int) -> list[Clip]:
    """Normalise `manifest` into the work folder's clip table, once.

    A re-run with the same manifest keeps the existing table (resume); a different manifest in the same
    work folder is refused, because finished chunks would no longer match their clips.
    """
    from mmdata.errors import ManifestError
    from mmdata.manifests.normalize import ManifestConfig, load_manifest
    from mmdata.utils import sha256_file

    digest = sha256_file(manifest)
    record = "manifest.json"
    work.check_layout()
    if work.has_clips() and work.store.exists(record):
        old = work.store.read_json(record)
        if old.get("sha256") != digest or old.get("chunk_size") != chunk_size:
            raise ManifestError(manifest, f"the work folder {work.root} was made from another manifest or chunk "
                                f"size ({old.get('path')}); use a new --work folder")
        return work.clips()
    clips = load_manifest(manifest, ManifestConfig(chunk_size=chunk_size))  # validates everything first
    write_clip_table(work, clips)
    work.store.write_json(record, {"path": str(manifest), "sha256": digest, "chunk_size": chunk_size,
                               "clips": len(clips), "chunks": len({c.chunk for c in clips})})
    return clips
