"""The frames stage decodes the frames all clips of a source pick in one ascending decord pass, not one
pass per clip, and each clip still gets exactly its own JPEGs and meta: compared here byte for byte with
the same clips decoded one by one (bare clips, not items: the path every clip took before passes). On a
source with open GOPs, where that comparison cannot hold, a pass gives the same bytes whatever the order
of the clips, the reads before it, or the clips a run still has to do.

decord's reads are counted for real: a spy on DecordVideo.decode logs the frame indices of each pass."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest

from mmdata.store.records import as_meta
from mmdata.media import frames_passes
from mmdata.media.config import FramesConfig
from mmdata.media.decord_video import DecordVideo
from mmdata.media.frames import open_video
from mmdata.media.probe import probe
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.runner import run_chunk
from mmdata.records import Clip
from mmdata.testing.media import make_video, truncate_file
from mmdata.testing.workdirs import add_downloaded, make_work
from mmdata.workdir import WorkDir

DURATION_S = 12.0
# (start, end) in seconds, not in time order: overlapping, nested, one with fewer frames than picks (they
# repeat), adjacent, the same window twice, past the end (clamped to 12 s), and starting after the end
WINDOWS = [(6.0, 9.0), (0.0, 3.0), (2.0, 5.0), (2.5, 3.5), (8.5, 12.5), (1.0, 11.0), (4.37, 4.61), (3.0, 6.0),
           (0.0, 3.0), (13.0, 14.0)]
AFTER_END = "s_9"
CONFIGS = [FramesConfig(frames=8), FramesConfig(frames=0, fps=5, size=0, resize="keep_aspect")]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """12 s, 25 fps, 320x240 H.264 with B-frames, a keyframe every 2 s: most windows start mid-GOP."""
    return make_video(tmp_path_factory.mktemp("src") / "src.mp4", duration_s=DURATION_S, audio=False,
                      extra_args=("-g", "50", "-bf", "2"))


@pytest.fixture
def reads(monkeypatch) -> list[list[int]]:
    """The frame indices of every decord decode pass, in the order they ran."""
    log: list[list[int]] = []
    real = DecordVideo.decode

    def spy(self, indices):
        log.append(list(indices))
        return real(self, indices)

    monkeypatch.setattr(DecordVideo, "decode", spy)
    return log


def clips_of(windows, video_id: str = "s") -> list[Clip]:
    return [Clip(key=f"{video_id}_{i}", video_id=video_id, url="x", start_s=s, end_s=e)
            for i, (s, e) in enumerate(windows)]


def work_of(root: Path, sources: dict[str, Path], clips: list[Clip]) -> WorkDir:
    work = make_work(root, clips)
    for vid, media in sources.items():
        add_downloaded(work, vid, media)
    return work


def stored(work: WorkDir, key: str) -> tuple[dict, list[bytes]]:
    meta = work.meta("frames", key)
    return meta, [(work.item_dir("frames", key) / f).read_bytes() for f in meta["files"]]


def outputs(stage: FramesStage, work: WorkDir, items: list, tmp_path: Path) -> dict:
    """Each item through `stage` in order, as the runner calls it: {key: (meta, JPEG bytes) or the error
    reason}."""
    out = {}
    for item in items:
        folder = Path(tempfile.mkdtemp(prefix="out-", dir=tmp_path))
        try:
            meta = as_meta(stage.process(item, folder, work))
        except Exception as e:  # an ItemError's reason, as the runner's row gives it
            out[item.key] = getattr(e, "reason", repr(e))
            continue
        out[item.key] = (meta, [(folder / f).read_bytes() for f in meta["files"]])
    return out


def one_by_one(work: WorkDir, clips: list[Clip], cfg: FramesConfig, tmp_path: Path) -> tuple[dict, int]:
    """Each clip on its own (bare clips), in the chunk's order, through one stage; and the decode passes that
    took."""
    stage = FramesStage(cfg)
    return outputs(stage, work, clips, tmp_path), stage.decodes


def assert_same_as_one_by_one(work: WorkDir, rows, ref: dict) -> None:
    for row in rows:
        want = ref[row.key]
        if isinstance(want, str):
            assert (row.status, row.reason) == ("error", want), row.key
        else:
            assert row.status == "ok", (row.key, row.detail)
            assert stored(work, row.key) == want, row.key


def assert_one_pass(passes: list[list[int]]) -> None:
    """One ascending run of reads: no frame decoded twice, no seek backwards."""
    assert len(passes) == 1 and passes[0] == sorted(set(passes[0]))


@pytest.mark.parametrize("cfg", CONFIGS, ids=["frames8", "fps5"])
def test_one_pass_gives_every_clip_its_own_frames(source, tmp_path, reads, cfg):
    clips = clips_of(WINDOWS)
    work = work_of(tmp_path / "w", {"s": source}, clips)
    stage = FramesStage(cfg)
    rows = run_chunk(stage, str(work.root), 0, clips)
    assert stage.decodes == 1
    assert_one_pass(reads)
    assert {r.key: r.reason for r in rows if r.status != "ok"} == {AFTER_END: "window_beyond_end"}
    reads.clear()
    ref, ref_decodes = one_by_one(work, clips, cfg, tmp_path)
    assert ref_decodes == len(clips) - 1 == len(reads)  # the old way: a pass per clip
    assert_same_as_one_by_one(work, rows, ref)
    clamped = stored(work, "s_4")[0]
    assert clamped["window"]["clamped"] and max(clamped["times"]) < DURATION_S - 8.5


def test_a_run_of_some_clips_gives_them_the_same_frames(source, tmp_path, reads):
    """A run of part of a chunk (--retry-failed) decodes the pass planned from all the source's clips; the
    clips it runs come out as decoded on their own."""
    clips = clips_of(WINDOWS)
    work = work_of(tmp_path / "w", {"s": source}, clips)
    some = ["s_5", "s_0", "s_6"]
    rows = run_chunk(FramesStage(), str(work.root), 0, clips, only_keys=some)
    assert_one_pass(reads)
    ref, _ = one_by_one(work, [c for c in clips if c.key in some], FramesConfig(), tmp_path)
    assert_same_as_one_by_one(work, [r for r in rows if r.key in some], ref)


@pytest.mark.parametrize("shuffled", [False, True])
def test_a_pass_holds_at_most_its_cap(source, tmp_path, reads, monkeypatch, shuffled):
    """With room for 20 frames, the clips (8 frames each, none shared) go two to a pass, in time order: 4
    passes for 8 clips in time order. In another order a clip of one pass may come between two of another,
    which is then decoded again; each clip's frames stay its own."""
    cfg = FramesConfig(frames=8, size=64)
    monkeypatch.setattr(frames_passes, "MAX_PASS_BYTES", 20 * 64 * 64 * 3)
    clips = clips_of([(1.5 * k, 1.5 * k + 1.0) for k in range(8)])
    if shuffled:
        random.Random(0).shuffle(clips)
    work = work_of(tmp_path / "w", {"s": source}, clips)
    stage = FramesStage(cfg)
    rows = run_chunk(stage, str(work.root), 0, clips)
    assert stage.decodes == len(reads) and (shuffled or len(reads) == 4)
    assert all(len(p) <= 20 and p == sorted(set(p)) for p in reads)
    ref, _ = one_by_one(work, clips, cfg, tmp_path)
    assert_same_as_one_by_one(work, rows, ref)


def test_each_source_in_a_chunk_gets_its_own_pass(source, tmp_path, reads):
    """Two sources: a pass each. Were their clips interleaved, each change of source would drop the held
    frames and plan again from the clips still to do; every clip still gets its own frames."""
    other = make_video(tmp_path / "other.mp4", duration_s=4.0, size=(176, 144), audio=False)
    a, b = clips_of([(0, 3), (5, 8), (2, 6)], "a"), clips_of([(0, 1), (1.5, 3.5)], "b")
    for order, decodes in ((a + b, 2), ([a[0], b[0], a[1], b[1], a[2]], 5)):
        reads.clear()
        work = work_of(tmp_path / f"w{decodes}", {"a": source, "b": other}, order)
        stage = FramesStage()
        rows = run_chunk(stage, str(work.root), 0, order)
        assert stage.decodes == len(reads) == decodes
        ref, _ = one_by_one(work, order, FramesConfig(), tmp_path)
        assert_same_as_one_by_one(work, rows, ref)


def test_a_pass_that_meets_a_decode_error_leaves_each_clip_to_itself(realmedia, tmp_path, reads):
    """decord_corrupted.mp4 (10 fps, 5 s) breaks at 3.0 s, which decord finds only when it gets there:
    the shared pass fails there, and every clip then goes the way it went on its own (decord before the
    break, the ffmpeg path and the measured decodable part across it, corrupt_file where too little of the
    window decodes), with the same bytes."""
    windows = [(2.5, 5.0), (0.0, 1.0), (1.0, 3.0), (2.0, 4.0), (0.0, 5.0), (0.5, 2.0), (3.5, 5.0)]
    clips = clips_of(windows)
    work = work_of(tmp_path / "w", {"s": realmedia / "decord_corrupted.mp4"}, clips)
    stage = FramesStage()
    rows = run_chunk(stage, str(work.root), 0, clips)
    shared = reads[0]
    assert len(shared) == len(set(shared)) > 8 and stage.decodes == len(reads) == 1 + len(clips)
    ref, _ = one_by_one(work, clips, FramesConfig(), tmp_path)
    assert_same_as_one_by_one(work, rows, ref)
    assert [r.reason for r in rows] == ["corrupt_file", "", "", "corrupt_file", "", "", "corrupt_file"]
    assert stored(work, "s_1")[0]["decode_error"] is None and stored(work, "s_4")[0]["truncated_at_s"] == 2.9


def test_a_file_decord_cannot_index_is_decoded_clip_by_clip(tmp_path, reads):
    """A truncated MP4 (remuxed, its decodable part measured with ffprobe): no shared pass, each clip exactly
    as on its own."""
    full = make_video(tmp_path / "fs.mp4", duration_s=4.0, audio=False, extra_args=("-movflags", "+faststart"))
    clips = clips_of([(1.0, 2.0), (0.0, 4.0), (0.0, 1.0), (2.0, 3.5)])
    work = work_of(tmp_path / "w", {"s": truncate_file(full, tmp_path / "cut.mp4", 0.6)}, clips)
    stage = FramesStage()
    rows = run_chunk(stage, str(work.root), 0, clips)
    ref, ref_decodes = one_by_one(work, clips, FramesConfig(), tmp_path)
    assert stage.decodes == ref_decodes
    assert_same_as_one_by_one(work, rows, ref)
    assert stored(work, "s_1")[0]["remuxed"] == "unreadable_by_decord"


@pytest.fixture(scope="module")
def open_gops(tmp_path_factory) -> Path:
    """8 s of MPEG-2 with B-frames, a keyframe every 12 frames: open GOPs, whose first frames after a
    keyframe decord decodes otherwise after a seek than when it reads on (checked below)."""
    return make_video(tmp_path_factory.mktemp("m2v") / "m2v.mp4", duration_s=8.0, audio=False,
                      vcodec="mpeg2video", extra_args=("-g", "12", "-bf", "2"))


def sought_differs(video: DecordVideo, indices: range) -> bool:
    """Whether any of `indices`, read first on a fresh reader (decord seeks to the keyframe before it),
    decodes otherwise than when the reader reads on to it from the first frame."""
    on, _, _ = video.decode(list(range(indices.stop)))
    for i in indices:
        video.reopen()
        if not (video.decode([i])[0][i] == on[i]).all():
            return True
    return False


def test_passes_read_alike_whatever_the_order_or_the_clips_left_to_do(open_gops, tmp_path, reads):
    """A clip decoded on its own got pictures that depended on the clip before it, in such a file. A pass
    is planned from every clip of the source, done or not, in time order: the same bytes in any order of the
    clips, and in a run of some of them."""
    assert sought_differs(open_video(open_gops, probe(open_gops), FramesConfig(), tmp_path), range(10, 16))
    clips = clips_of([(0.5, 2.5), (5.0, 7.5), (1.9, 4.1), (0.0, 8.0), (3.3, 3.9), (6.1, 6.9)])
    outputs = []
    for name, order, some in (("time", sorted(clips, key=lambda c: c.start_s), None), ("listed", clips, None),
                              ("reversed", clips[::-1], None), ("some", clips, ["s_4", "s_1"])):
        work = work_of(tmp_path / name, {"s": open_gops}, order)
        rows = run_chunk(FramesStage(), str(work.root), 0, order, only_keys=some)
        assert all(r.status == "ok" for r in rows)
        outputs.append({r.key: stored(work, r.key) for r in rows})
    assert outputs[0] == outputs[1] == outputs[2]
    assert all(outputs[3][k] == outputs[0][k] for k in ("s_4", "s_1"))


def test_a_pass_starts_on_a_rewound_reader(open_gops, tmp_path, reads):
    """A read that leaves decord just before a pass's first frame, after the same keyframe, would have it
    read on instead of seeking to that keyframe: the pass rewinds first, and reads as on a fresh reader."""
    import decord

    cfg = FramesConfig(frames=0, fps=25, size=64)  # every frame of a window
    k = decord.VideoReader(str(open_gops)).get_key_indices()[2]
    t = open_video(open_gops, probe(open_gops), cfg, tmp_path).starts
    before = Clip(key="x", video_id="s", url="x", start_s=float(t[k - 6]), end_s=float(t[k]))  # ends at k - 1
    clips = clips_of([(float(t[k + 1]), float(t[k + 1]) + 1.0), (float(t[k + 1]) + 0.5, float(t[k + 1]) + 1.5)])
    work = work_of(tmp_path / "w", {"s": open_gops}, clips)
    results = []
    for read_before in (False, True):
        stage = FramesStage(cfg)
        if read_before:  # the same stage, so the same open reader
            outputs(stage, work, [before], tmp_path)
        reads.clear()
        results.append(outputs(stage, work, stage.items(work, clips), tmp_path))
        assert_one_pass(reads)
        assert reads[0][0] == k + 1
    assert results[0] == results[1]
