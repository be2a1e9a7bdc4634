"""De-duplication as two steps (mmdata/dedup/):

    signatures  a worker stage: each clip's exact and near signatures, from its source's packets (ffmpeg,
                once per source) and the frames stage's JPEGs. Chunks run anywhere, in any order.
    dedup       judged on the driver, chunk by chunk in chunk order (a prefix gate: chunk N once every chunk
                below N is judged), against the index of the clips kept in the chunks before it. A kept clip
                gets a DedupOutput (its signatures); a later copy an error row `duplicate_of:<key>`, which
                quantize, the tokenizer fit and shard leave out and the funnel counts.

Chunk N's decision thus depends only on chunks <= N, and is the same whichever order their signatures finish
in, on local workers or Ray. Its stamp carries the previous chunk's (stamps.PREFIX_STAGES), so a chunk
redone below N redoes N too. The driver holds the index (about 4 x frames entries per kept clip); a new run
rebuilds it from the committed dedup tables, each read once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdata.dedup.index import DedupConfig, Deduper, Signature
from mmdata.dedup.signatures import exact_signature, frame_hashes, packet_hash
from mmdata.environment import Needs
from mmdata.errors import ItemError
from mmdata.pipelines.base import Resources, ShipsConfigOnly, SourceItem, Stage, unpack_source_item, upstream_output
from mmdata.pipelines.runner import ChunkTask, RunnerConfig, Summary, plan, redone_note, run_chunk, run_stage, summarize
from mmdata.records import Clip
from mmdata.store.records import DedupOutput, DownloadOutput, FramesOutput, SignaturesOutput
from mmdata.workdir import WorkDir

# the stages a clip must have passed to be judged: one that failed in any of them is no copy to keep
JUDGED_AFTER = ("download", "frames", "audio", "align", "filter", "signatures")


class SignaturesStage(ShipsConfigOnly, Stage):
    name = "signatures"  # its needs: STEP_NEEDS["signatures"]
    resources = Resources(cpus=1, memory_mb=512)
    run_only = ("exact", "near", "max_distance", "timeout_s")  # they judge, dedup's options: not what is measured

    def __init__(self, cfg: DedupConfig | None = None):
        self.cfg = cfg or DedupConfig()
        self._packets: dict[str, str] = {}  # video_id -> packet hash: once per source (its clips share a chunk)

    def items(self, work: WorkDir, clips: list[Clip]) -> list[SourceItem]:
        from mmdata.pipelines.base import source_items

        return source_items(clips)

    def process(self, item: SourceItem | Clip, out_dir: Path, work: WorkDir) -> SignaturesOutput:
        clip, _ = unpack_source_item(item)
        frames: FramesOutput | None = upstream_output(work, "frames", clip.key)
        download: DownloadOutput | None = upstream_output(work, "download", clip.video_id)
        near: tuple[str | None, ...] = ()
        if frames is not None and frames.present and frames.files:
            files = work.item_files("frames", clip.key)
            near = tuple(frame_hashes([(f"{clip.key}/{n}", files.get(n)) for n in frames.files], self.cfg.black_range))
        exact = None
        if download is not None:  # the manifest's window: a resolved end differs by container (mkv pads audio)
            exact = exact_signature(self._packet_hash(work, clip.video_id, download), clip.start_s, clip.end_s)
        return SignaturesOutput(exact=exact, near=near)

    def _packet_hash(self, work: WorkDir, video_id: str, download: DownloadOutput) -> str:
        if video_id not in self._packets:
            media = work.item_dir("download", video_id) / download.media
            self._packets = {video_id: packet_hash(media, self.cfg.timeout_s, download.duration_s or 0.0)}
        return self._packets[video_id]


class DedupStage(ShipsConfigOnly, Stage):
    """Run on the driver only (`prefix`): `judge_chunk` decides a chunk's clips, `process` hands out the
    decisions to the runner's `run_chunk`, which commits them as any stage's chunk."""

    name = "dedup"
    prefix = True
    run_only = ("black_range", "timeout_s")  # the signatures stage's options

    def __init__(self, cfg: DedupConfig | None = None):
        self.cfg = cfg or DedupConfig()
        self.index = Deduper(self.cfg)
        self._decided: dict[str, DedupOutput | ItemError] = {}
        self._next = 0  # the index holds the kept clips of every chunk below this one
        self._chunks: dict[int, list[Clip]] | None = None

    def needs(self) -> Needs:
        return Needs()  # it reads tables; the signatures stage needs the tools

    def should_retry(self, row) -> bool:
        return not row.reason.startswith("duplicate_of:")  # judged again, the same copy is found again

    def process(self, item: Clip, out_dir: Path, work: WorkDir) -> DedupOutput:
        decided = self._decided.get(item.key)
        if decided is None:
            raise RuntimeError(f"dedup: {item.key} was not judged before its chunk ran (judge_chunk first)")
        if isinstance(decided, ItemError):
            raise decided
        return decided

    def run_task(self, work: WorkDir, task: ChunkTask, on_item=None) -> None:
        """Judge one chunk and commit it: every chunk below it must be judged (or committed) already."""
        self.catch_up(work, task.chunk)
        self.judge_chunk(work, task.chunk, task.clips)
        run_chunk(self, work, task.chunk, task.clips, task.only_keys, on_item, task.inputs)

    def catch_up(self, work: WorkDir, chunk: int) -> None:
        """Add the kept clips of the committed chunks below `chunk` that the index lacks, in manifest order."""
        if self._chunks is None:
            self._chunks = work.chunks()
        for c in sorted(self._chunks):
            if self._next <= c < chunk:
                table = work.read_table(self.name, c)
                metas = dict(table.metas) if table is not None else {}
                for clip in self._chunks[c]:
                    if clip.key in metas:
                        self.index.add(Signature.from_meta(clip.key, metas.pop(clip.key)))
        self._next = max(self._next, chunk)

    def judge_chunk(self, work: WorkDir, chunk: int, clips: list[Clip]) -> None:
        """Decide each clip of the chunk in order; the kept ones join the index."""
        failed = upstream_errors(work, chunk)
        table = work.read_table("signatures", chunk)
        metas = table.metas if table is not None else {}
        self._decided = {}
        for clip in clips:
            if clip.key in self._decided:
                continue  # a repeated manifest row: judged once
            self._decided[clip.key] = self._judge(clip, failed.get(clip.video_id) or failed.get(clip.key),
                                                  metas.get(clip.key))
        self._next = chunk + 1

    def _judge(self, clip: Clip, failed: str | None, meta: dict[str, Any] | None) -> DedupOutput | ItemError:
        if failed:
            return ItemError(f"missing_{failed}", f"clip {clip.key} failed in the {failed} stage: not judged")
        if meta is None:
            return ItemError("missing_signatures", f"clip {clip.key} has no signatures: run the signatures stage")
        sig = Signature.from_meta(clip.key, meta)
        match = self.index.judge(sig)
        if match is not None:
            return ItemError(f"duplicate_of:{match.key}", match.detail(self.cfg.max_distance))
        self.index.add(sig)
        return DedupOutput(exact=meta.get("exact"), near=tuple(meta.get("near") or ()))


def upstream_errors(work: WorkDir, chunk: int) -> dict[str, str]:
    """key (clip, or source for download) -> the first stage before dedup that failed on it, for one chunk."""
    out: dict[str, str] = {}
    for st in JUDGED_AFTER:
        table = work.read_table(st, chunk) if work.stage_ran(st) else None
        for r in table.rows if table is not None else []:
            if r.status == "error":
                out.setdefault(r.key, st)
    return out


def run_dedup(work: WorkDir, cfg: DedupConfig, runner: RunnerConfig) -> list[Summary]:
    """`mmdata dedup`: the signatures of every chunk (workers), then each chunk judged in order (here)."""
    import time

    from mmdata.pipelines.stamps import Stamps

    summaries = [run_stage(SignaturesStage(cfg), work, runner)]
    t0 = time.perf_counter()
    stage = DedupStage(cfg)
    work.clean_temp(stage.name)
    tasks, skipped = plan(stage, work, runner.retry_failed, runner.force, Stamps(work, {stage.name: stage}))
    summary = Summary(stage.name, chunks_run=len(tasks), chunks_skipped=skipped)
    for task in sorted(tasks, key=lambda t: t.chunk):
        stage.run_task(work, task)
        summary.processed_now += task.n_items
    summary.wall_s = time.perf_counter() - t0
    summary = summarize(stage, work, summary)
    summary.notes += redone_note(tasks) + [f"index: {len(stage.index)} clips kept, {stage.index.compared} near "
                                           "comparisons"]
    return summaries + [summary]
