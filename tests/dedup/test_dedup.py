"""De-duplication on real media generated here: one video re-encoded at another bitrate, re-muxed into mkv
and cropped by 4 px is found three times as a copy of the first; two different videos are not; the copy kept
is the first in manifest order whatever order the chunks' signatures finish in; copies across chunks; and
quantize's view (a copy is never a sample)."""
from __future__ import annotations

import pytest

from mmdata.dedup.index import DedupConfig, Deduper, Signature, near_distance
from mmdata.dedup.signatures import packet_hash, phash
from mmdata.errors import ItemError
from mmdata.media.config import FramesConfig
from mmdata.pipelines.base import upstream_output
from mmdata.pipelines.dedup import DedupStage, SignaturesStage, run_dedup
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.runner import RunnerConfig, run_chunk, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.reasons import counted, describe
from mmdata.records import Clip
from mmdata.testing.media import ffmpeg, make_video
from mmdata.testing.workdirs import add_downloaded, make_work

RUN = RunnerConfig(workers=1, progress=False)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("dedup-media")
    make_video(d / "orig.mp4", 4.0)  # testsrc2 with a tone, H.264 + AAC
    ffmpeg("-i", str(d / "orig.mp4"), "-c:v", "libx264", "-b:v", "120k", "-c:a", "aac", "-b:a", "32k",
           str(d / "lowrate.mp4"))
    ffmpeg("-i", str(d / "orig.mp4"), "-map", "0", "-c", "copy", str(d / "remux.mkv"))
    ffmpeg("-i", str(d / "orig.mp4"), "-vf", "crop=312:232:4:4", "-c:v", "libx264", "-c:a", "copy",
           str(d / "cropped.mp4"))
    ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=320x240:rate=25", "-t", "4", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(d / "other.mp4"))
    make_video(d / "another.mp4", 4.0, vfilter="hflip,negate")  # the same pattern, flipped and negated
    return d


def _work(root, media, names, chunks=None):
    """One clip per file, chunk `chunks[i]` (default 0), framed by the real frames stage."""
    chunks = chunks or [0] * len(names)
    clips = [Clip(key=f"{n.split('.')[0]}_0", video_id=n.split(".")[0], url=f"http://127.0.0.1/{n}", kind="video",
                  chunk=c, row=i + 1) for i, (n, c) in enumerate(zip(names, chunks))]
    work = make_work(root, clips)
    for n in names:
        add_downloaded(work, n.split(".")[0], media / n)
    assert run_stage(FramesStage(FramesConfig(frames=8)), work, RUN).failed == 0
    return work


def _reasons(work):
    return {r.key: r.reason for r in read_all_status(work, "dedup")}


def test_reencoded_remuxed_and_cropped_copies_are_found_and_different_videos_are_not(tmp_path, media):
    names = ["orig.mp4", "lowrate.mp4", "remux.mkv", "cropped.mp4", "other.mp4", "another.mp4"]
    work = _work(tmp_path / "w", media, names)
    sig, ded = run_dedup(work, DedupConfig(), RUN)
    assert sig.failed == 0 and ded.failed == 3
    assert _reasons(work) == {"orig_0": "", "lowrate_0": "duplicate_of:orig_0", "remux_0": "duplicate_of:orig_0",
                              "cropped_0": "duplicate_of:orig_0", "other_0": "", "another_0": ""}
    rows = {r.key: r for r in read_all_status(work, "dedup")}
    assert rows["remux_0"].detail.startswith("exact copy of orig_0")  # the same packets in another container
    assert rows["lowrate_0"].detail.startswith("near copy of orig_0") and "8 sampled frame pairs" in rows[
        "lowrate_0"].detail
    assert rows["cropped_0"].detail.startswith("near copy of orig_0")
    assert ded.reasons == {"duplicate_of": 3}  # counted as one reason, not one per kept key
    assert describe("dedup:duplicate_of:orig_0").name == "duplicate_of:<key>"
    assert counted("duplicate_of:orig_0") == "duplicate_of"
    kept = work.output("dedup", "orig_0")
    assert len(kept.near) == 8 and kept.exact == work.output("signatures", "orig_0").exact
    with pytest.raises(ItemError) as e:  # quantize's view: a copy is never a sample
        upstream_output(work, "dedup", "cropped_0")
    assert e.value.reason == "missing_dedup"


def test_distances_and_the_exact_signature(tmp_path, media):
    work = _work(tmp_path / "w", media, ["orig.mp4", "lowrate.mp4", "cropped.mp4", "other.mp4"])
    run_stage(SignaturesStage(), work, RUN)
    near = {k: Signature.from_meta(k, work.meta("signatures", k)).near
            for k in ("orig_0", "lowrate_0", "cropped_0", "other_0")}
    assert near_distance(near["orig_0"], near["lowrate_0"])[0] <= 2
    assert near_distance(near["orig_0"], near["cropped_0"])[0] <= 8
    assert near_distance(near["orig_0"], near["other_0"])[0] >= 20
    # packets: mp4 and mkv of the same stream hash alike; a re-encode does not
    assert packet_hash(media / "orig.mp4", 60) == packet_hash(media / "remux.mkv", 60)
    assert packet_hash(media / "orig.mp4", 60) != packet_hash(media / "lowrate.mp4", 60)


def test_copies_across_chunks_keep_the_first_in_manifest_order_whatever_order_signatures_finish(tmp_path, media):
    names = ["other.mp4", "cropped.mp4", "orig.mp4", "remux.mkv"]
    chunks = [0, 0, 1, 1]
    a = _work(tmp_path / "a", media, names, chunks)
    run_dedup(a, DedupConfig(), RUN)
    want = {"other_0": "", "cropped_0": "", "orig_0": "duplicate_of:cropped_0", "remux_0": "duplicate_of:cropped_0"}
    assert _reasons(a) == want  # the cropped copy comes first in the manifest: it is the one kept
    b = _work(tmp_path / "b", media, names, chunks)
    sig = SignaturesStage()
    for chunk in (1, 0):  # chunk 1's signatures first, as a faster worker would finish them
        run_chunk(sig, b, chunk, b.chunks()[chunk])
    run_dedup(b, DedupConfig(), RUN)
    assert _reasons(b) == want


def test_a_rerun_keeps_judged_chunks_and_rebuilds_the_index_from_them(tmp_path, media):
    names = ["orig.mp4", "other.mp4", "lowrate.mp4"]
    work = _work(tmp_path / "w", media, names, [0, 0, 1])
    sig = SignaturesStage()
    for chunk in (0, 1):
        run_chunk(sig, work, chunk, work.chunks()[chunk])
    stage = DedupStage()
    from mmdata.pipelines.runner import plan
    from mmdata.pipelines.stamps import Stamps

    tasks, _ = plan(stage, work, False, False, Stamps(work, {"dedup": stage}))
    stage.run_task(work, next(t for t in tasks if t.chunk == 0))  # a run stopped after chunk 0
    _, ded = run_dedup(work, DedupConfig(), RUN)  # a new driver: chunk 0 is read back, chunk 1 judged
    assert ded.chunks_run == 1 and ded.chunks_skipped == 1
    assert _reasons(work)["lowrate_0"] == "duplicate_of:orig_0"
    with pytest.raises(Exception, match="max_distance 10 -> 4"):  # other options: refused, not mixed
        run_dedup(work, DedupConfig(max_distance=4), RUN)


def test_band_index_finds_every_pair_within_the_distance_that_brute_force_finds():
    import random

    rng = random.Random(0)
    cfg = DedupConfig(max_distance=10)
    base = [rng.getrandbits(64) for _ in range(300)]
    sigs = []
    for i, h in enumerate(base):
        sigs.append(Signature(f"a{i}", None, (h,)))
        flips = rng.sample(range(64), rng.randrange(0, 14))  # some within 10 bits, some beyond
        sigs.append(Signature(f"b{i}", None, (h ^ sum(1 << f for f in flips),)))
    index, brute = Deduper(cfg), []
    for s in sigs:
        m = index.judge(s)
        if m is None:
            index.add(s)
        kept = [k for k in brute if (k.near[0] ^ s.near[0]).bit_count() <= 10]
        assert (m.key if m else None) == (kept[0].key if kept else None)
        if not kept:
            brute.append(s)
    assert index.compared < len(sigs) * 3  # a few candidates each, not every kept clip


@pytest.mark.parametrize("seed", [1, 2])
def test_band_index_decides_as_brute_force_on_clips_of_many_lengths_across_tail_moves(monkeypatch, seed):
    """Clips of 1-9 frames with blanks, some of 12 (positions past the 8 with buckets of their own) and of 70
    (past 64), copies re-encoded (bits flipped), a frame shorter or longer, or with frames blanked; the index's
    tail moved into its bulk every few clips. Every decision is brute force's: the earliest kept clip whose
    median distance is within max_distance."""
    import random

    from mmdata.dedup import index as index_module

    monkeypatch.setattr(index_module, "_TAIL_SIZE", 256)
    rng = random.Random(seed)
    cfg = DedupConfig(max_distance=10)

    def flip(h, most):
        return None if h is None else h ^ sum(1 << b for b in rng.sample(range(64), rng.randrange(0, most + 1)))

    sigs = []
    for i in range(500):
        if sigs and rng.random() < 0.4:
            src = list(sigs[rng.randrange(len(sigs))].near)
            near = [flip(h, rng.choice((3, 8, 14))) for h in src]
            if rng.random() < 0.2:
                near = near[:-1] if rng.random() < 0.5 and len(near) > 1 else near + [rng.getrandbits(64)]
            if rng.random() < 0.2:
                near[rng.randrange(len(near))] = None
        else:
            n = rng.choice((1, 2, 5, 8, 8, 8, 9, 12, 70) if i % 50 else (70,))
            near = [None if rng.random() < 0.1 else rng.getrandbits(64) for _ in range(n)]
        sigs.append(Signature(f"c{i}", None, tuple(near)))
    index, kept, found = Deduper(cfg), [], 0
    for s in sigs:
        m = index.judge(s)
        if m is None:
            index.add(s)
        want = next((k for k in kept if (d := near_distance(s.near, k.near)) and d[0] <= 10), None)
        assert (m.key if m else None) == (want.key if want else None)
        if want is None:
            kept.append(s)
        found += m is not None
    assert found > 100 and len(index) == len(kept)
    assert index._table.entries.size > 0  # the tail was moved into the bulk, and looked up there


def test_phash_of_a_flat_picture_is_stable():
    import numpy as np

    assert phash(np.zeros((32, 32))) == phash(np.zeros((32, 32)))


def test_streamed_dedup_judges_on_the_driver_as_the_command_does(tmp_path, media):
    from mmdata.pipelines.pools import InProcessPool
    from mmdata.pipelines.runner import plan
    from mmdata.pipelines.stamps import Stamps
    from mmdata.pipelines.stream import ChunkGraph, stream_stages

    names = ["other.mp4", "cropped.mp4", "orig.mp4", "remux.mkv"]
    work = _work(tmp_path / "w", media, names, [0, 0, 1, 1])
    stages = {"signatures": SignaturesStage(), "dedup": DedupStage()}
    stamps = Stamps(work, stages)
    tasks = {n: {t.chunk: t for t in plan(s, work, False, False, stamps)[0]} for n, s in stages.items()}
    graph = ChunkGraph(list(stages), tasks, [0, 1], None, 4, prefix={"dedup"})
    pool = InProcessPool({"signatures": stages["signatures"]}, work)
    clocks, _ = stream_stages(stages, work, pool, graph, None, progress=False)
    assert clocks["dedup"].items == 4 and not clocks["dedup"].failures
    assert _reasons(work) == {"other_0": "", "cropped_0": "", "orig_0": "duplicate_of:cropped_0",
                              "remux_0": "duplicate_of:cropped_0"}
    _, ded = run_dedup(work, DedupConfig(), RUN)  # the command afterwards: every chunk stamped as it would
    assert ded.chunks_run == 0 and ded.chunks_skipped == 2
