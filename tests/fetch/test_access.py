"""YouTube access options: from the command line and the YAML to yt-dlp's parameters (parsed by yt-dlp's own
option parser), refused with yt-dlp's words when wrong, and carried inside the stage config to workers."""
from __future__ import annotations

import pickle

import pytest
from click.testing import CliRunner

from mmdata.commands.download import download_cmd
from mmdata.config import build_config
from mmdata.errors import ConfigError
from mmdata.fetch.access import Access, read_proxies
from mmdata.fetch.ytdlp import YtdlpRequest, _Logger, _options
from mmdata.pipelines.download import DownloadConfig, DownloadStage

COOKIES = "# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t2000000000\tSID\tsecret123\n"


def test_yaml_section_and_command_line_reach_yt_dlps_parameters(tmp_path):
    (tmp_path / "cookies.txt").write_text(COOKIES)
    section = {"cookies": str(tmp_path / "cookies.txt"), "proxy": ["http://10.0.0.1:3128", "socks5://10.0.0.2:1080"],
               "sleep_requests": 1.5, "sleep-interval": 4, "limit_rate": "4M", "concurrency": 4,
               "youtube_extractor_args": "player_client=default,-tv;po_token=web+XYZ", "js_runtimes": ["deno", "node"]}
    cfg = build_config(DownloadConfig, {"sleep_requests_s": 2.0}, section)  # the command line wins
    req = YtdlpRequest("https://www.youtube.com/watch?v=dQw4w9WgXcQ", access=cfg.access,
                       proxy=cfg.access.proxy_for("dQw4w9WgXcQ"))
    opts = _options(req, tmp_path, _Logger())
    assert opts["sleep_interval_requests"] == 2.0 and opts["sleep_interval"] == 4.0
    assert opts["ratelimit"] == 4 * 1024 * 1024 // 4  # the worker's cap, shared by its 4 downloads
    assert opts["extractor_args"] == {"youtube": {"player_client": ["default", "-tv"], "po_token": ["web+XYZ"]}}
    assert opts["js_runtimes"] == {"deno": {"path": None}, "node": {"path": None}}
    assert opts["proxy"] in section["proxy"]
    assert ".youtube.com\tTRUE\t/\tTRUE\t2000000000\tSID\tsecret123" in opts["cookiefile"].read()  # in memory


def test_nothing_set_means_yt_dlps_defaults():
    opts = _options(YtdlpRequest("u"), __import__("pathlib").Path("."), _Logger())
    assert not {"ratelimit", "sleep_interval", "sleep_interval_requests", "extractor_args", "js_runtimes", "proxy",
                "cookiefile"} & set(opts)


@pytest.mark.parametrize("key, value, words", [
    ("limit_rate", "fast", 'invalid rate limit "fast"'),
    ("cookies_from_browser", "netscape", 'unsupported browser specified for cookies: "netscape"'),
    ("js_runtimes", ["rhino"], "rhino"),
    ("proxy", ["ftp://10.0.0.1:21"], "is not a proxy URL"),
    ("proxy", ["no-such-file.txt"], "neither a proxy URL"),
    ("cookies", "no-such-cookies.txt", "no such file"),
    ("block_share", 0, "a share in (0, 1]"),
])
def test_a_wrong_value_is_refused_before_any_work_naming_it(key, value, words):
    with pytest.raises(ConfigError) as e:
        build_config(DownloadConfig, {}, {key: value})
    assert f"DownloadConfig.{key}" in str(e.value) and words in str(e.value), str(e.value)


def test_a_json_cookie_file_is_refused_with_yt_dlps_reason(tmp_path):
    (tmp_path / "c.json").write_text('[{"domain": ".youtube.com", "name": "SID", "value": "x"}]\n')
    with pytest.raises(ConfigError, match="must be Netscape formatted, not JSON"):
        DownloadConfig(cookies=str(tmp_path / "c.json"))


def test_proxies_from_a_file_and_a_stable_spread(tmp_path):
    (tmp_path / "proxies.txt").write_text("# office\nhttp://10.0.0.1:3128\n\nsocks5h://u:p@10.0.0.2:1080\n")
    proxies = read_proxies((str(tmp_path / "proxies.txt"), "http://10.0.0.3:8080"))
    assert proxies == ("http://10.0.0.1:3128", "socks5h://u:p@10.0.0.2:1080", "http://10.0.0.3:8080")
    access = Access(proxies=proxies)
    keys = [f"video{i:04d}" for i in range(300)]
    chosen = [access.proxy_for(k) for k in keys]
    assert chosen == [Access(proxies=proxies).proxy_for(k) for k in keys]  # any worker, any order: the same
    assert all(80 <= chosen.count(p) <= 120 for p in proxies)  # spread evenly
    assert all(access.proxy_for(k, 1) != access.proxy_for(k, 0) for k in keys)  # a retry: the next one


def test_the_options_travel_with_the_stage_to_a_worker(tmp_path):
    """Ray and the local pool send a stage pickled (its config alone); the worker's yt-dlp gets the same
    options, and the cookies even where the file does not exist."""
    (tmp_path / "cookies.txt").write_text(COOKIES)
    cfg = DownloadConfig(cookies=str(tmp_path / "cookies.txt"), proxy=("http://10.0.0.1:3128",),
                         limit_rate="1M", sleep_requests_s=0.5, concurrency=2)
    shipped = pickle.dumps(DownloadStage(cfg))
    (tmp_path / "cookies.txt").unlink()
    worker = pickle.loads(shipped)
    opts = _options(YtdlpRequest("u", access=worker.cfg.access, proxy=worker.cfg.access.proxy_for("k")), tmp_path,
                    _Logger())
    assert (opts["ratelimit"], opts["sleep_interval_requests"], opts["proxy"]) == (512 * 1024, 0.5,
                                                                                  "http://10.0.0.1:3128")
    assert "secret123" in opts["cookiefile"].read()
    assert "secret123" not in repr(worker.cfg)  # never printed with the config


def test_the_command_line_lists_the_options():
    out = CliRunner().invoke(download_cmd, ["--help"]).output
    for option in ("--cookies", "--cookies-from-browser", "--proxy", "--sleep-requests", "--sleep-interval",
                   "--limit-rate", "--youtube-extractor-args", "--js-runtimes"):
        assert option in out, option
