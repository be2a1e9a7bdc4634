"""The network guard (mmdata/fetch/guard.py) against a real HTTP server on 127.0.0.1, through the download
stage, urllib, yt-dlp and ffmpeg.

The server is reached as `media.test`, a name that resolves to 127.0.0.1 only inside these tests (the
guard's resolver hook; the internet's DNS is the one thing mocked) and that the policy lists in
`allow_hosts`. So the allowed path is real, and everything that reaches 127.0.0.1 by any other way (a
redirect, a second DNS answer, an HLS playlist, ffmpeg's own request) must be refused by the guard itself,
on the address it is about to connect to.
"""
from __future__ import annotations

import ipaddress
import socket
import tarfile

import pytest

from mmdata.config import build_config
from mmdata.errors import ConfigError, ItemError
from mmdata.fetch import guard
from mmdata.fetch.guard import NetPolicy
from mmdata.manifests.normalize import source_id
from mmdata.manifests.table import import_manifest
from mmdata.pipelines.download import DownloadConfig, DownloadStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.testing.media import hls_stream, make_flash_beep_video
from mmdata.testing.server import MediaServer
from mmdata.utils import sha256_file
from mmdata.workdir import WorkDir

PUBLIC = "93.184.215.14"  # a global address; no test connects to it


@pytest.fixture
def names(monkeypatch):
    """Test DNS: media.test -> 127.0.0.1; rebind.test -> public for the first lookup, 127.0.0.1 after (DNS
    rebinding); cgnat.test -> 100.64.0.7. Every other name goes to the real resolver."""
    lookups: dict[str, int] = {}

    def answer(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        lookups[name] = lookups.get(name, 0) + 1
        ip = {"media.test": "127.0.0.1", "cgnat.test": "100.64.0.7",
              "rebind.test": PUBLIC if lookups[name] == 1 else "127.0.0.1"}.get(name)
        if ip is None:
            return guard._real_getaddrinfo(host, port, family, type, proto, flags)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0))]

    monkeypatch.setattr(guard, "resolver", answer)
    return lookups


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Media, subtitles and HLS streams; the stream `inside.m3u8` names its segments at 127.0.0.1:PORT,
    so the server is started here and the playlist written for its port."""
    from mmdata.testing.media import make_video

    d = tmp_path_factory.mktemp("guarded")
    for name in ("a", "b", "c", "d", "e", "f"):
        make_video(d / f"{name}.mp4", 1.0, size=(96, 64))
    make_flash_beep_video(d / "long.mp4", 6.0, 3.0)
    (d / "a.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhello\n")
    (d / "secret.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nan internal answer\n")
    with MediaServer(d) as srv:
        hls_stream(d / "a.mp4", d / "ok.m3u8")
        hls_stream(d / "b.mp4", d / "inside.m3u8", base_url=f"http://127.0.0.1:{srv.port}/")
        yield d, srv


def url(srv: MediaServer, path: str, host: str = "media.test") -> str:
    return f"http://{host}:{srv.port}/{path}"


def inside(srv: MediaServer, path: str) -> str:
    return f"http://127.0.0.1:{srv.port}/{path}"


def download(tmp_path, rows: list[tuple[str, str]], **cfg):
    """The download stage on `rows` (url, subtitles) in this process (the test resolver lives here)."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("url,subtitles\n" + "".join(f"{u},{s}\n" for u, s in rows))
    work = WorkDir(tmp_path / "work")
    import_manifest(work, manifest, 256)
    config = DownloadConfig(allow_hosts=("media.test",), retries=1, backoff_s=0.0, timeout_s=10, **cfg)
    run_stage(DownloadStage(config), work, RunnerConfig(progress=False, workers=1))
    return work, {r.key: (r.status, r.reason, r.detail) for r in read_all_status(work, "download")}


def stored(work: WorkDir) -> list[str]:
    """Every file the download stage keeps in the work folder (its packs' members)."""
    return sorted(m for p in (work.root / "download").glob("*.tar") for m in tarfile.open(p).getnames())


@pytest.mark.parametrize("address, allowed", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.1.1", False), ("172.16.0.1", False),
    ("169.254.169.254", False),  # cloud metadata (AWS, GCP, Azure)
    ("100.100.100.200", False), ("100.64.0.7", False),  # CGNAT 100.64.0.0/10 (Alibaba's metadata address)
    ("0.0.0.0", False), ("192.0.2.1", False), ("224.0.0.1", False),
    ("::1", False), ("fc00::1", False), ("fe80::1", False), ("::ffff:127.0.0.1", False), ("::ffff:8.8.8.8", True),
])
def test_only_globally_routable_addresses_are_allowed(address, allowed):
    assert NetPolicy().address_allowed(ipaddress.ip_address(address)) is allowed
    assert NetPolicy(allow_local=True).address_allowed(ipaddress.ip_address(address))


def test_allow_hosts_takes_names_addresses_and_networks():
    p = NetPolicy(allow_hosts=("Media.Internal", "10.1.0.0/16", "192.168.5.5"))
    assert p.host_listed("media.internal") and not p.host_listed("other.internal")
    assert p.address_allowed(ipaddress.ip_address("10.1.200.3")) and p.address_allowed(ipaddress.ip_address("192.168.5.5"))
    assert not p.address_allowed(ipaddress.ip_address("10.2.0.1"))
    with pytest.raises(ConfigError, match="allow_hosts entry 'http://x/'"):
        DownloadConfig(allow_hosts=("http://x/",))
    cfg = build_config(DownloadConfig, {"allow_hosts": "a.test, 10.0.0.0/8"})  # the command line's form
    assert cfg.network == NetPolicy(False, ("a.test", "10.0.0.0/8"))


def test_an_allowed_host_downloads_media_subtitles_and_hls(tmp_path, names, served):
    d, srv = served
    work, rows = download(tmp_path, [(url(srv, "a.mp4"), url(srv, "a.vtt")), (url(srv, "ok.m3u8"), "")])
    assert {r[:2] for r in rows.values()} == {("ok", "")}, rows
    a = work.meta("download", source_id(url(srv, "a.mp4")))
    item = work.item_dir("download", source_id(url(srv, "a.mp4")))
    assert sha256_file(item / a["media"]) == sha256_file(d / "a.mp4")
    assert (item / "subs.und.manifest.vtt").read_text() == (d / "a.vtt").read_text()
    hls = work.meta("download", source_id(url(srv, "ok.m3u8")))
    assert hls["probe"]["has_video"] and hls["probe"]["duration_s"] == pytest.approx(1.0, abs=0.1)


def test_every_way_inside_is_refused_and_nothing_is_stored(tmp_path, names, served):
    _, srv = served
    cases = {
        # a redirect from the allowed host to 127.0.0.1, and one to ftp://
        url(srv, "redirect?to=" + inside(srv, "a.mp4")): "",
        url(srv, "redirect?to=ftp://media.test/b.mp4"): "",
        # DNS rebinding: the early check sees a public address, the connection would get 127.0.0.1
        url(srv, "c.mp4", host="rebind.test"): "",
        # an HLS playlist on the allowed host whose segments are at 127.0.0.1 (yt-dlp's native downloader)
        url(srv, "inside.m3u8"): "",
        # a manifest subtitles URL that redirects inside: the whole row is refused, the video too
        url(srv, "d.mp4"): url(srv, "redirect?to=" + inside(srv, "secret.vtt")),
        # CGNAT: by name at the early check, by a redirect at connect time, and the metadata address itself
        url(srv, "e.mp4", host="cgnat.test"): "",
        url(srv, "redirect?to=" + url(srv, "f.mp4", host="cgnat.test")): "",
        "http://100.100.100.200/latest/meta-data/": "",
    }
    before = dict(srv.counts)
    work, rows = download(tmp_path, list(cases.items()))
    reached = {k: v - before.get(k, 0) for k, v in srv.counts.items() if v != before.get(k, 0)}
    assert len(rows) == len(cases) and {r[:2] for r in rows.values()} == {("error", "refused_url")}, rows
    assert stored(work) == []
    assert not list(work.staged_dir("download", "x").parent.iterdir())
    # the allowed host answered (its redirects, its playlist, d.mp4 before its subtitles); nothing behind it
    paths = {p.split(" ")[-1] for p in reached}
    assert "/inside.m3u8" in paths and "/d.mp4" in paths
    assert not paths & {"/a.mp4", "/b.mp4", "/c.mp4", "/e.mp4", "/f.mp4", "/secret.vtt"}, reached
    assert not [p for p in paths if p.startswith("/inside-")], reached
    assert names["rebind.test"] == 2  # the early check's answer, then the connection's (refused)
    details = {k: r[2] for k, r in rows.items()}
    assert "127.0.0.1" in details[source_id(url(srv, "c.mp4", host="rebind.test"))]
    # yt-dlp skips a fragment that fails and reports an empty file: the guard's own record says why
    assert details[source_id(url(srv, "inside.m3u8"))].startswith(f"127.0.0.1:{srv.port} is not a public address")
    assert "http and https only" in details[source_id(url(srv, "redirect?to=ftp://media.test/b.mp4"))]


def test_ffmpeg_for_sections_goes_through_the_guard(tmp_path, names, served):
    """--sections hands the media URL to ffmpeg, a separate process: its requests go through the guarded
    proxy. The allowed host's section downloads; a redirect only ffmpeg sees (the server redirects its
    User-Agent alone) to 127.0.0.1 is refused."""
    d, srv = served
    sneaky = url(srv, "redirect-ffmpeg?to=" + inside(srv, "long.mp4"))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"url,start,end\n{url(srv, 'long.mp4')},2.5,4.5\n{sneaky},2.5,4.5\n")
    work = WorkDir(tmp_path / "work")
    import_manifest(work, manifest, 256)
    config = DownloadConfig(allow_hosts=("media.test",), sections=True, retries=0, timeout_s=10)
    run_stage(DownloadStage(config), work, RunnerConfig(progress=False, workers=1))
    rows = {r.key: (r.status, r.reason, r.detail) for r in read_all_status(work, "download")}
    ok = rows[source_id(url(srv, "long.mp4"))]
    assert ok[:2] == ("ok", ""), ok
    meta = work.meta("download", source_id(url(srv, "long.mp4")))
    assert meta["offset_s"] == 2.5 and meta["probe"]["duration_s"] < 2.3
    assert rows[source_id(sneaky)][:2] == ("error", "refused_url"), rows[source_id(sneaky)]
    assert srv.counts["/redirect-ffmpeg?to=" + inside(srv, "long.mp4")] >= 2  # yt-dlp's request, then ffmpeg's


def test_outside_a_guarded_block_nothing_is_checked(served):
    """The store (an S3 endpoint on the internal network) and Ray share the worker: the guard is scoped."""
    _, srv = served
    guard._install()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5):
        pass
    with pytest.raises(ItemError, match="127.0.0.1") as refused, guard.guarded(NetPolicy()):
        socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    assert refused.value.reason == "refused_url" and isinstance(refused.value.__cause__, guard.Refused)


def test_the_proxy_tunnels_https_only_to_allowed_addresses(names, served):
    """ffmpeg sends https through CONNECT: the tunnel to the allowed host carries bytes both ways (plain HTTP
    here, no TLS server in the tests), the one to 127.0.0.1 is answered 403 and counts against the source."""
    from mmdata.fetch.guard_proxy import proxy_url

    d, srv = served

    def connect(scope, target: str) -> bytes:
        port = int(proxy_url(scope).rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            answer = s.recv(4096)
            if answer.startswith(b"HTTP/1.1 200"):
                s.sendall(b"GET /a.vtt HTTP/1.0\r\nHost: media.test\r\n\r\n")
                while block := s.recv(65536):
                    answer += block
            return answer

    scope = guard.Scope(NetPolicy(allow_hosts=("media.test",)))  # a source's, entered by the proxy's threads
    try:
        tunneled = connect(scope, f"media.test:{srv.port}")
        assert not scope.refusals and tunneled.endswith((d / "a.vtt").read_bytes())
        assert connect(scope, f"127.0.0.1:{srv.port}").startswith(b"HTTP/1.1 403")
        assert scope.refusals == [f"127.0.0.1:{srv.port} is not a public address; pass --allow-hosts 127.0.0.1 "
                                  f"to allow it"]
    finally:
        for close in scope.on_close:
            close()
