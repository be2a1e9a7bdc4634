"""`mmdata download --prefilter` on a local corpus of watch pages: each rule drops a source before any media
byte (the server's request counts prove it), admitted sources reuse the page and captions the prefilter
fetched, and a re-run with a looser rule fetches only what the change admits.

The pages are served by a site shaped like YouTube (mmdata/testing/fakesite.py: a yt-dlp extractor for
local watch pages, as YouTube itself cannot be reached here); everything else is the real CLI, yt-dlp and
HTTP server."""
import subprocess
import sys

from mmdata.manifests.normalize import source_id
from mmdata.testing.captions import random_lines, youtube_json3
from mmdata.testing.fakesite import plugin_env, watch_page
from mmdata.testing.server import MediaServer
from mmdata.workdir import WorkDir
from tests.pipelines.test_download import status_rows

CLI = [sys.executable, "-m", "mmdata.cli"]
CC = "Creative Commons Attribution license (reuse allowed)"
RULES = ["--prefilter", "--prefilter-min-duration", "10", "--prefilter-min-words-per-30s", "20",
         "--prefilter-categories", "Education,Howto & Style", "--prefilter-licenses", CC]


def json3(n_words: int) -> tuple[str, str]:
    lines, end_ms = random_lines(n_words, seed=n_words)
    return "json3", youtube_json3(lines, end_ms)


def vtt(n_words: int) -> tuple[str, str]:
    cues = [f"00:00:{i:02d}.000 --> 00:00:{i + 1:02d}.000\nword{2 * i} word{2 * i + 1}" for i in range(n_words // 2)]
    return "vtt", "WEBVTT\n\n" + "\n\n".join(cues) + "\n"


def corpus(root, media) -> dict[str, str]:
    """Pages that each fail one rule of RULES (with max duration 100 s), and two that pass; name -> page path."""
    page = dict(media=media, duration=30, categories=["Education"], license=CC, automatic_captions={"en": json3(30)})
    return {
        "ok_auto": watch_page(root, "ok_auto", **page),
        "ok_manual": watch_page(root, "ok_manual", **{**page, "duration": 60, "categories": ["Howto & Style"],
                                                      "automatic_captions": None, "subtitles": {"en": vtt(60)}}),
        "short": watch_page(root, "short", **{**page, "duration": 5}),
        "long": watch_page(root, "long", **{**page, "duration": 500, "automatic_captions": {"en": json3(400)}}),
        "gaming": watch_page(root, "gaming", **{**page, "categories": ["Gaming"]}),
        "standard": watch_page(root, "standard", **{**page, "license": None}),
        "german": watch_page(root, "german", **{**page, "automatic_captions": {"de": json3(30)}}),
        "sparse": watch_page(root, "sparse", **{**page, "automatic_captions": {"en": json3(5)}}),
    }


def download(manifest, work, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + ["download", str(manifest), "--work", str(work), "--allow-local", "--workers", "1",
                                 "--no-progress", *RULES, *extra], capture_output=True, text=True, env=plugin_env())


def test_prefilter_drops_each_rule_before_any_media_and_a_looser_rerun_fetches_only_the_newly_admitted(
        tmp_path, served_dir):
    root = tmp_path / "site"
    pages = corpus(root, served_dir / "a.mp4")
    with MediaServer(root) as srv:
        manifest = tmp_path / "m.csv"
        manifest.write_text("url\n" + "\n".join(srv.url(p) for p in pages.values()) + "\n")
        key = {name: source_id(srv.url(p)) for name, p in pages.items()}
        work = tmp_path / "work"

        first = download(manifest, work, "--prefilter-max-duration", "100")
        after_first = dict(srv.counts)
        rows = status_rows(work)
        looser = download(manifest, work, "--prefilter-max-duration", "1000", "--retry-failed")
        after_looser = dict(srv.counts)
        again = download(manifest, work, "--prefilter-max-duration", "1000", "--retry-failed")
        after_again = dict(srv.counts)
        rows_after = status_rows(work)

    assert first.returncode == 3, first.stderr
    reasons = {name: rows[key[name]]["reason"] for name in pages}
    assert reasons == {"ok_auto": "", "ok_manual": "", "short": "prefilter_duration", "long": "prefilter_duration",
                       "gaming": "prefilter_category", "standard": "prefilter_license",
                       "german": "prefilter_no_captions", "sparse": "prefilter_sparse_captions"}
    # each detail: the value measured, then the rule it failed
    detail = {name: rows[key[name]]["detail"].split(": ", 1)[1] for name in pages if reasons[name]}
    assert detail["short"] == "lasts 5 s (rule: duration in [10 s, 100 s])"
    assert detail["long"] == "lasts 500 s (rule: duration in [10 s, 100 s])"
    assert detail["gaming"] == ("categories 'Gaming' (rule: categories allowed: 'Education', 'Howto & Style'; "
                                "denied: none)")
    assert detail["standard"] == f"no licence given (rule: licences allowed: '{CC}')"
    assert detail["german"] == ("no wanted captions (the page offers manual: none; auto: de) "
                                "(rule: captions (manual or auto) in en)")
    assert detail["sparse"] == ("5.0 caption words per 30 s (en auto: 5 words over 30 s) "
                                "(rule: at least 20 caption words per 30 s (manual or auto in en))")

    # every page read once; media only for the admitted; captions once (the download reused the prefilter's),
    # and none for a source dropped on its info alone
    for name, p in pages.items():
        assert after_first[f"/{p}"] == 1, name
        assert after_first.get(f"/media/{name}.mp4", 0) == (name in ("ok_auto", "ok_manual")), name
    assert after_first["/captions/ok_auto.en.auto.json3"] == 1
    assert after_first["/captions/ok_manual.en.manual.vtt"] == 1
    assert after_first["/captions/sparse.en.auto.json3"] == 1
    for name in ("short", "long", "gaming", "standard"):
        assert f"/captions/{name}.en.auto.json3" not in after_first, name
    assert "/captions/german.de.auto.json3" not in after_first

    w = WorkDir(work)
    ok_auto, ok_manual = w.meta("download", key["ok_auto"]), w.meta("download", key["ok_manual"])
    assert ok_auto["subtitles"] == [{"file": "subs.en.auto.json3", "lang": "en", "origin": "auto", "ext": "json3"}]
    assert ok_manual["subtitles"] == [{"file": "subs.en.manual.vtt", "lang": "en", "origin": "manual", "ext": "vtt"}]
    fetched = (w.item_dir("download", key["ok_auto"]) / "subs.en.auto.json3").read_text()
    assert fetched == (root / "captions/ok_auto.en.auto.json3").read_text()
    assert ok_auto["info"]["duration"] == 30 and ok_auto["info"]["license"] == CC

    # a looser maximum: only the rows its rule dropped are judged again (their pages read again); only the
    # newly admitted source's media is fetched, and the rows other rules dropped cost no request
    assert looser.returncode == 3, looser.stderr
    new = {path: n - after_first.get(path, 0) for path, n in after_looser.items() if n != after_first.get(path, 0)}
    assert new == {f"/{pages['long']}": 1, f"/{pages['short']}": 1, "/captions/long.en.auto.json3": 1,
                   "/media/long.mp4": 1, f"HEAD /{pages['long']}": 1, f"HEAD /{pages['short']}": 1}
    assert rows_after[key["long"]]["status"] == "ok"
    assert rows_after[key["short"]]["detail"].endswith("lasts 5 s (rule: duration in [10 s, 1000 s])")
    assert rows_after[key["sparse"]] == rows[key["sparse"]]
    assert "ok 3, failed 5" in looser.stdout

    # the same rules again: every drop stands, and nothing is requested
    assert again.returncode == 3 and after_again == after_looser
    assert "ok 3, failed 5" in again.stdout
