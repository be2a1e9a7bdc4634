"""A resolver that cannot answer now (EAI_AGAIN) is retried like a timeout; a name that does not exist is not.

DNS cannot fail on demand here, so the one stand-in is a resolver hook: test host names resolve through
socket.getaddrinfo and the network guard's resolver hook, patched in this process (the stage runs in it: --workers 1) to the real HTTP server on
127.0.0.1, after the failures the test asks for. Everything else is real: the stage, urllib, yt-dlp."""
from __future__ import annotations

import collections
import socket

import pytest

from mmdata.manifests.table import import_manifest
from mmdata.pipelines.download import DownloadConfig, DownloadStage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.status import read_all_status
from mmdata.testing.media import jpeg_bytes, scene
from mmdata.testing.server import MediaServer
from mmdata.workdir import WorkDir

TEMPORARY = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
NO_SUCH_NAME = socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def resolver(monkeypatch):
    """`resolver.fail[host] = [error, ...]`: the next lookups of `host` raise those, in turn (an empty list
    stops there; `forever` keeps raising the one error); then `host` resolves to 127.0.0.1."""
    from mmdata.fetch import guard

    real = guard._real_getaddrinfo
    state = type("Resolver", (), {"fail": {}, "forever": {}, "calls": collections.Counter()})()

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            state.calls[host] += 1
            if host in state.forever:
                raise state.forever[host]
            if state.fail.get(host):
                raise state.fail[host].pop(0)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(guard, "resolver", getaddrinfo)  # the URL check and the guard resolve through this hook
    return state


def download(tmp_path, urls, allow_local=True):
    tmp_path.mkdir(exist_ok=True)
    m = tmp_path / "m.csv"
    m.write_text("url\n" + "".join(f"{u}\n" for u in urls))
    work = WorkDir(tmp_path / "w")
    import_manifest(work, m, 256)
    run_stage(DownloadStage(DownloadConfig(allow_local=allow_local, retries=2, backoff_s=0.01, timeout_s=10)),
              work, RunnerConfig(progress=False, workers=1))
    rows = {r.key: r for r in read_all_status(work, "download")}
    return work, [rows[c.video_id] for c in work.clips()]


def test_a_temporary_failure_is_retried_and_the_source_fetched(tmp_path, served_dir, resolver):
    (served_dir / "pic.jpg").write_bytes(jpeg_bytes(scene(1, (64, 64))))
    with MediaServer(served_dir) as srv:
        # a direct fetch (an image: urllib) and a media link (yt-dlp)
        urls = [srv.url("pic.jpg").replace("127.0.0.1", "img.test"), srv.url("b.mp4").replace("127.0.0.1", "vid.test")]
        resolver.fail = {"img.test": [TEMPORARY], "vid.test": [TEMPORARY]}
        work, rows = download(tmp_path, urls)
    assert [(r.status, r.reason) for r in rows] == [("ok", ""), ("ok", "")]
    assert [work.meta("download", r.key)["attempts"] for r in rows] == [2, 2]


def test_a_resolver_that_stays_down_is_dns_temporary_after_the_retries(tmp_path, served_dir, resolver):
    with MediaServer(served_dir) as srv:
        # an image (urllib), a media link and a web page (yt-dlp: its message names the failure)
        hosts = {"pic.jpg": "img", "b.mp4": "vid", "page.html": "page"}
        urls = [srv.url(p).replace("127.0.0.1", f"{h}.test") for p, h in hosts.items()]
        resolver.forever = {f"{h}.test": TEMPORARY for h in hosts.values()}
        _, rows = download(tmp_path, urls)
        resolver.forever = {f"{h}2.test": NO_SUCH_NAME for h in hosts.values()}
        _, gone = download(tmp_path / "2", [u.replace(".test", "2.test") for u in urls])
    assert [(r.status, r.reason) for r in rows] == [("error", "dns_temporary")] * 3
    assert all("Temporary failure in name resolution" in r.detail for r in rows)
    assert [(r.status, r.reason) for r in gone] == [("error", "dns_error")] * 3
    # three attempts against one for a name that does not exist
    for host in hosts.values():
        assert resolver.calls[f"{host}.test"] == 3 * resolver.calls[f"{host}2.test"] > 0


def test_the_url_check_resolves_inside_the_retries(tmp_path, resolver):
    """Without --allow-local the host is resolved to check its address first; a failure there is retried too."""
    resolver.forever = {"down.test": TEMPORARY}
    _, rows = download(tmp_path, ["http://down.test/a.mp4"], allow_local=False)
    assert [(r.status, r.reason) for r in rows] == [("error", "dns_temporary")]
    assert resolver.calls["down.test"] == 3
