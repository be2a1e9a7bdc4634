"""The download stage against a real HTTP server on 127.0.0.1, through the real CLI and yt-dlp."""
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmdata.manifests.normalize import source_id
from mmdata.pipelines.download import DownloadConfig, DownloadStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.records import Source
from mmdata.testing.server import MediaServer
from mmdata.utils import sha256_file
from mmdata.pipelines.status import read_all_status
from mmdata.workdir import WorkDir

CLI = [sys.executable, "-m", "mmdata.cli"]


def status_rows(work: Path, stage="download"):
    return {r.key: r.to_dict() for r in read_all_status(WorkDir(work), stage)}


def write_manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("url,start,end,subtitles\n" + "\n".join(rows) + "\n")
    return path


def test_mixed_manifest_good_outputs_and_error_reasons(tmp_path, served_dir):
    with MediaServer(served_dir, stall_s=15) as srv:
        u = srv.url
        m = write_manifest(tmp_path / "m.csv", [
            f"{u('a.mp4')},0,1,{u('a.vtt')}", f"{u('a.mp4')},1,2,", f"{u('b.mp4')},0,1,",
            f"{u('missing.mp4')},0,1,", f"{u('stall/x.mp4')},0,1,", f"{u('page.html')},0,1,", f"{u('junk.bin')},0,1,",
            f"{u('trunc.mp4')},0,1,", f"{u('c.mp4')},0,1,{u('missing.vtt')}"])
        work = tmp_path / "work"
        proc = subprocess.run(CLI + ["download", str(m), "--work", str(work), "--allow-local", "--timeout", "1.5",
                                     "--retries", "1", "--no-progress"], capture_output=True, text=True)
        counts = dict(srv.counts)
    assert proc.returncode == 3, proc.stderr
    rows = status_rows(work)
    reasons = {k.rsplit("-", 1)[0]: (r["status"], r["reason"]) for k, r in rows.items()}
    assert reasons == {"a": ("ok", ""), "b": ("ok", ""), "c": ("ok", ""), "missing": ("error", "http_404"),
                       "x": ("error", "timeout"), "page": ("error", "unsupported_url"),
                       "junk": ("error", "not_media"),
                       "trunc": ("error", "corrupt_media")}
    # a.mp4 serves two clips but is fetched once; a direct media link skips the extractor sniff
    assert counts["/a.mp4"] == 1 and counts["/stall/x.mp4"] == 2  # 2 attempts
    w = WorkDir(work)
    for name in ("a", "b", "c"):
        vid = source_id(u(f"{name}.mp4"))
        meta = w.meta("download", vid)
        fetched = w.item_dir("download", vid) / meta["media"]
        assert sha256_file(fetched) == sha256_file(served_dir / f"{name}.mp4")
        assert meta["bytes"] == (served_dir / f"{name}.mp4").stat().st_size
    a = w.meta("download", source_id(u("a.mp4")))
    assert a["probe"]["has_audio"] and a["probe"]["has_video"] and a["probe"]["duration_s"] == pytest.approx(2.0, abs=0.05)
    assert a["subtitles"] == [{"file": "subs.und.manifest.vtt", "lang": "und", "origin": "manifest", "ext": "vtt"}]
    assert (w.item_dir("download", source_id(u("a.mp4"))) / "subs.und.manifest.vtt").read_text().startswith("WEBVTT")
    assert sorted(a["clip_keys"]) == sorted(c.key for c in w.clips() if c.video_id == source_id(u("a.mp4")))
    b = w.meta("download", source_id(u("b.mp4")))
    assert b["probe"]["has_audio"] is False and b["probe"]["has_video"] is True
    c = w.meta("download", source_id(u("c.mp4")))  # a dead subtitle URL costs the subtitles, not the video
    assert c["subtitles"] == [] and c["subtitle_error"]["reason"] == "http_404"
    assert "404" in rows[source_id(u("missing.mp4"))]["detail"]
    assert "failures by reason" in proc.stdout and "http_404" in proc.stdout and "ok 3, failed 5" in proc.stdout
    assert not list(WorkDir(work).staged_dir("download", "x").parent.iterdir())  # nothing left staged


def test_local_and_private_urls_are_refused_without_allow_local(tmp_path, served_dir):
    with MediaServer(served_dir) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url('a.mp4')},0,1,", f"file://{served_dir / 'b.mp4'},0,1,",
                                                f"{served_dir / 'c.mp4'},0,1,", "ftp://example.com/x.mp4,0,1,"])
        work = WorkDir(tmp_path / "work")
        from mmdata.manifests.table import import_manifest

        import_manifest(work, m, 256)
        summary = run_stage(DownloadStage(DownloadConfig()), work, RunnerConfig(progress=False))
        assert srv.counts == {}  # nothing was fetched
    assert summary.failed == 4 and summary.reasons == {"refused_url": 4}
    details = [r["detail"] for r in status_rows(work.root).values()]
    assert any("--allow-local" in d and "loopback" in d for d in details)
    assert any("scheme 'ftp'" in d for d in details)


def test_local_files_are_copied_with_allow_local(tmp_path, served_dir):
    m = write_manifest(tmp_path / "m.csv", [f"{served_dir / 'a.mp4'},0,1,", f"{served_dir / 'nope.mp4'},0,1,"])
    proc = subprocess.run(CLI + ["download", str(m), "--work", str(tmp_path / "w"), "--allow-local", "--no-progress"],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    rows = status_rows(tmp_path / "w")
    assert sorted((r["status"], r["reason"]) for r in rows.values()) == [("error", "local_file_not_found"), ("ok", "")]


def test_size_cap_and_wrong_config_value(tmp_path, served_dir):
    with MediaServer(served_dir) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url('a.mp4')},0,1,"])
        base = CLI + ["download", str(m), "--work", str(tmp_path / "w"), "--allow-local", "--no-progress"]
        proc = subprocess.run(base + ["--max-filesize-mb", "0.01"], capture_output=True, text=True)
        assert proc.returncode == 3
        assert [r["reason"] for r in status_rows(tmp_path / "w").values()] == ["over_size_cap"]
        bad = subprocess.run(CLI + ["download", str(m), "--work", str(tmp_path / "w2"), "--container", "avi"],
                             capture_output=True, text=True)
    assert bad.returncode == 2 and "DownloadConfig.container = 'avi'" in bad.stderr and "mp4" in bad.stderr


def test_retry_failed_reruns_only_failed_items(tmp_path, served_dir):
    import shutil

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(served_dir / "a.mp4", served / "a.mp4")
    with MediaServer(served) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url('a.mp4')},0,1,", f"{srv.url('late.mp4')},0,1,"])
        base = CLI + ["download", str(m), "--work", str(tmp_path / "w"), "--allow-local", "--no-progress"]
        assert subprocess.run(base, capture_output=True).returncode == 3
        shutil.copy(served_dir / "b.mp4", served / "late.mp4")  # the missing file appears
        assert subprocess.run(base, capture_output=True).returncode == 3  # plain re-run: chunk is done, skipped
        first = dict(srv.counts)
        proc = subprocess.run(base + ["--retry-failed"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout
        assert srv.counts["/a.mp4"] == first["/a.mp4"]  # the good item was not fetched again
    rows = status_rows(tmp_path / "w")
    assert {r["status"] for r in rows.values()} == {"ok"} and len(rows) == 2


def _comparable(work: Path):
    rows = {k: (r["status"], r["reason"], r["bytes"]) for k, r in status_rows(work).items()}
    w = WorkDir(work)
    packs = {c: w.store.read_bytes(f"download/{w.read_table('download', c).pack}") for c in w.table_chunks("download")
             if w.read_table("download", c).pack}
    return rows, packs


def test_killed_run_resumes_to_the_same_result_without_refetching(tmp_path, served_dir):
    with MediaServer(served_dir, delay_s=0.3) as srv:
        rows = [f"{srv.url(f's{i}.mp4')},0,0.4," for i in range(6)] + [f"{srv.url('missing.mp4')},0,1,"]
        m = write_manifest(tmp_path / "m.csv", rows)
        args = ["--allow-local", "--no-progress", "--concurrency", "1", "--chunk-size", "2"]
        ref = tmp_path / "ref"
        subprocess.run(CLI + ["download", str(m), "--work", str(ref)] + args, capture_output=True, check=False)
        srv.counts.clear()

        work = tmp_path / "work"
        proc = subprocess.Popen(CLI + ["download", str(m), "--work", str(work)] + args,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(work.glob("download/chunk-*.parquet")):
            time.sleep(0.05)
        time.sleep(0.4)  # let it get into the middle of the next chunk
        proc.kill()
        proc.wait()
        w = WorkDir(work)  # committed chunks, and the items the killed chunk had finished (staged)
        done_before = {k for c in w.table_chunks("download") for k in w.read_table("download", c).spans} | \
            {p.name for p in w.staged_dir("download", "x").parent.iterdir() if (p / "meta.json").exists()}
        counts_before = dict(srv.counts)
        assert 0 < len(done_before) < 6, "the kill must land part-way"
        again = subprocess.run(CLI + ["download", str(m), "--work", str(work)] + args, capture_output=True)
        assert again.returncode == 3
    assert _comparable(work) == _comparable(ref)
    for vid in done_before:  # finished items were not downloaded again
        name = "/" + next(p for p in counts_before if source_id(srv.url(p.lstrip("/"))) == vid).lstrip("/")
        assert srv.counts[name] == counts_before[name]


def test_source_grouping_spans_all_clips():
    from mmdata.pipelines.download import sources_of
    from mmdata.records import Clip

    clips = [Clip("v_0_1000", "v", "http://h/v.mp4", 0.0, 1.0), Clip("v_5000_7000", "v", "http://h/v.mp4", 5.0, 7.0),
             Clip("w_full", "w", "http://h/w.mp4")]
    got = sources_of(clips)
    assert got == [Source("v", "http://h/v.mp4", "video", None, ("v_0_1000", "v_5000_7000"), 0.0, 7.0),
                   Source("w", "http://h/w.mp4", "video", None, ("w_full",), None, None)]


def test_section_download_keeps_clip_times_source_relative(tmp_path):
    """--sections fetches only [6.5, 8.5] of a 12 s source; frames and audio of the clip still show the
    flash and beep at source 7.0 s, i.e. 0.5 s into the clip (within one frame)."""
    import numpy as np
    from PIL import Image

    from mmdata.media_io import read_audio
    from mmdata.testing.media import make_flash_beep_video

    served = tmp_path / "served"
    served.mkdir()
    make_flash_beep_video(served / "long.mp4", 12.0, 7.0)
    work = tmp_path / "w"
    with MediaServer(served) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url('long.mp4')},6.5,8.5,"])
        for args in (["download", str(m), "--allow-local", "--sections"], ["frames", "--fps", "25"], ["audio"]):
            proc = subprocess.run(CLI + args + ["--work", str(work), "--no-progress"], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stdout + proc.stderr
    w = WorkDir(work)
    (clip,) = w.clips()
    dl = w.meta("download", clip.video_id)
    assert dl["offset_s"] == 6.5 and dl["probe"]["duration_s"] < 2.2  # only the section was fetched
    frames = w.meta("frames", clip.key)
    assert frames["window"]["offset_s"] == 6.5 and len(frames["times"]) == 50
    brightness = [np.asarray(Image.open(w.item_dir("frames", clip.key) / f)).mean() for f in frames["files"]]
    assert abs(frames["times"][int(np.argmax(brightness))] - 0.5) <= 1 / 25 + 1e-3
    audio = read_audio(w.item_dir("audio", clip.key) / "audio.flac", 16000)
    assert abs(np.argmax(np.abs(audio) > 0.1) / 16000 - 0.5) <= 1 / 25


def test_local_files_without_extension_get_their_kind_from_their_bytes(tmp_path, served_dir):
    """No kind column, no extension, no server to ask: the file's format decides (image, audio, video)."""
    import shutil

    from PIL import Image

    from mmdata.testing.speech import write_audio

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(src / "picture", format="PNG")
    write_audio(np.zeros(8000, np.float32) + 0.01, 16000, src / "voice.wav")
    (src / "voice.wav").rename(src / "voice")
    shutil.copy(served_dir / "a.mp4", src / "movie")
    m = tmp_path / "m.csv"
    m.write_text("url\n" + "".join(f"{src / n}\n" for n in ("picture", "voice", "movie")))
    proc = subprocess.run(CLI + ["download", str(m), "--work", str(tmp_path / "w"), "--allow-local", "--no-progress"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    w = WorkDir(tmp_path / "w")
    kinds = {c.url.rsplit("/", 1)[1]: (w.meta("download", c.video_id)["kind"], w.meta("download", c.video_id)["kind_from"])
             for c in w.clips()}
    assert kinds == {"picture": ("image", "file"), "voice": ("audio", "file"), "movie": ("video", "file")}


def test_a_direct_media_link_is_one_plain_get_without_yt_dlp(tmp_path, served_dir, monkeypatch):
    """yt-dlp adds nothing for a link that names a media file but its per-download set-up: it is not used."""
    import yt_dlp

    def no_ytdlp(*a, **k):
        raise AssertionError("yt-dlp was used for a direct media link")

    monkeypatch.setattr(yt_dlp, "YoutubeDL", no_ytdlp)
    with MediaServer(served_dir) as srv:
        src = Source("a", srv.url("a.mp4"), "video", None, ("a_full",), None, None)
        out = tmp_path / "out"
        out.mkdir()
        meta = DownloadStage(DownloadConfig(allow_local=True)).process(src, out, WorkDir(tmp_path / "w"))
        counts = dict(srv.counts)
    assert counts == {"/a.mp4": 1}
    assert sha256_file(out / "media.mp4") == sha256_file(served_dir / "a.mp4") and meta.media == "media.mp4"
    assert meta.info == {"id": "a", "title": "a", "ext": "mp4", "webpage_url": srv.url("a.mp4"), "extractor": "direct"}


def test_a_direct_fetch_that_drips_gives_up_after_its_total_time(tmp_path):
    from mmdata.errors import ItemError
    from mmdata.fetch.direct import fetch

    (tmp_path / "slow.mp4").write_bytes(bytes(200_000))
    with MediaServer(tmp_path, rate_bps=100_000) as srv:  # never stalls long enough for the socket timeout
        t0 = time.monotonic()
        with pytest.raises(ItemError) as e:
            fetch(srv.url("slow.mp4"), tmp_path / "got.mp4", timeout_s=5, max_bytes=None, total_s=0.3)
    assert e.value.reason == "timeout" and time.monotonic() - t0 < 1.9


def test_frames_and_audio_read_the_probe_the_download_check_made(tmp_path, served_dir, monkeypatch):
    """The download stage's ffprobe of a file is kept as the media stages' probe of the committed file: they run
    no ffprobe of their own, and what they read is what probing the file gives."""
    import mmdata.media.probe as probe_mod
    from mmdata.manifests.table import import_manifest
    from mmdata.media.config import AudioConfig, FramesConfig
    from mmdata.media.probe import Probe, probe
    from mmdata.media.source import probe_cache_file
    from mmdata.pipelines.audio import AudioStage
    from mmdata.pipelines.frames import FramesStage

    with MediaServer(served_dir) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url('a.mp4')},0,1,", f"{srv.url('a.mp4')},1,2,"])
        work = WorkDir(tmp_path / "w")
        import_manifest(work, m, 256)
        run_stage(DownloadStage(DownloadConfig(allow_local=True)), work, RunnerConfig(progress=False, workers=1))
    calls = []
    real = probe_mod.ffprobe_json
    monkeypatch.setattr(probe_mod, "ffprobe_json", lambda *a, **k: calls.append(a) or real(*a, **k))
    one = RunnerConfig(progress=False, workers=1)  # in this process, where the calls are counted
    summaries = [run_stage(FramesStage(FramesConfig(frames=2)), work, one), run_stage(AudioStage(AudioConfig()), work, one)]
    assert [(s.ok, s.failed) for s in summaries] == [(2, 0), (2, 0)] and calls == []
    vid = work.clips()[0].video_id
    media = work.item_dir("download", vid) / work.meta("download", vid)["media"]
    cached = json.loads(probe_cache_file(work, vid).read_text())
    assert dataclasses.replace(Probe.from_dict(cached["probe"]), path=str(media)) == probe(media)
    assert (cached["media"], cached["size"]) == (media.name, media.stat().st_size)


def test_a_subtitle_that_fails_costs_the_subtitles_not_the_video(tmp_path, served_dir):
    """yt-dlp writes subtitles before the media and stops at the first that fails (YouTube's timedtext
    endpoint often answers 429). The video is kept, fetched once, and the failure recorded with its reason."""
    import shutil

    from mmdata.manifests.table import import_manifest

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(served_dir / "a.mp4", served / "a.mp4")
    (served / "good.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nhello world\n")
    page = ('<html><head><title>t</title></head><body><video controls><source src="a.mp4" type="video/mp4">'
            '<track kind="subtitles" srclang="en" src="/{track}"></video></body></html>')
    (served / "good.html").write_text(page.format(track="good.vtt"))
    (served / "busy.html").write_text(page.format(track="status/429"))
    with MediaServer(served) as srv:
        m = write_manifest(tmp_path / "m.csv", [f"{srv.url('good.html')},0,1,", f"{srv.url('busy.html')},0,1,"])
        work = WorkDir(tmp_path / "w")
        import_manifest(work, m, 256)
        s = run_stage(DownloadStage(DownloadConfig(allow_local=True)), work, RunnerConfig(progress=False, workers=1))
        counts = dict(srv.counts)
    assert (s.ok, s.failed) == (2, 0)
    # the summary counts the sources that kept their video but lost a side file
    assert s.notes == ["side errors: 1 source(s) kept their media but lost side files (subtitles: rate_limited 1)"]
    assert s.notes[0] in s.render()
    good, busy = (work.meta("download", source_id(srv.url(f"{n}.html"))) for n in ("good", "busy"))
    assert good["subtitles"] == [{"file": "subs.en.manual.vtt", "lang": "en", "origin": "manual", "ext": "vtt"}]
    assert "side_errors" not in good
    assert busy["subtitles"] == [] and busy["side_errors"] == [
        {"what": "subtitles", "reason": "rate_limited",
         "detail": "Unable to download video subtitles for 'en': HTTP Error 429: Too Many Requests"}]
    assert sha256_file(work.item_dir("download", source_id(srv.url("busy.html"))) / busy["media"]) == \
        sha256_file(served / "a.mp4")
    # each page read once (the retry reuses its info), the media twice (once per page), the 429 once
    assert (counts["/good.html"], counts["/busy.html"], counts["/a.mp4"], counts["/status/429"]) == (1, 1, 2, 1)
