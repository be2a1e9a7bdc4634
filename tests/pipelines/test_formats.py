"""Format choice for decoding: yt-dlp's own selection and sorting, run with mmdata's options on an info dict
offering H.264, VP9 and AV1 at several heights (as yt-dlp's test suite does with its fake extractors;
nothing is fetched)."""
import pytest
from click.testing import CliRunner

from mmdata.commands.download import download_cmd
from mmdata.fetch.ytdlp import YtdlpRequest, _Logger, _options, failure
from mmdata.pipelines.download import DownloadConfig

CODECS = {"h264": ("avc1.4d401e", "mp4", 2.0), "vp9": ("vp9", "webm", 1.5), "av1": ("av01.0.05M.08", "mp4", 1.0)}


def offered(heights=(360, 480, 720, 1080), codecs=("h264", "vp9", "av1")) -> list[dict]:
    out = [{"format_id": f"{c}-{h}", "url": f"http://127.0.0.1:9/{c}{h}", "height": h, "width": h * 16 // 9,
            "vcodec": CODECS[c][0], "acodec": "none", "ext": CODECS[c][1], "tbr": h * CODECS[c][2]}
           for h in heights for c in codecs]
    return out + [{"format_id": "audio", "url": "http://127.0.0.1:9/a", "vcodec": "none", "acodec": "mp4a.40.2",
                   "ext": "m4a", "abr": 128}]


def chosen(req: YtdlpRequest, formats: list[dict], tmp_path) -> list[str]:
    from yt_dlp import YoutubeDL

    opts = {**_options(req, tmp_path, _Logger()), "simulate": True}
    with YoutubeDL(opts) as ydl:
        info = ydl.process_ie_result({"id": "v", "title": "v", "formats": formats, "extractor": "test",
                                      "extractor_key": "Test", "webpage_url": "http://127.0.0.1:9/v"}, download=False)
    return [f["format_id"] for f in info.get("requested_formats") or [info]]


def test_the_largest_under_the_cap_in_the_codec_that_decodes_fastest(tmp_path):
    assert chosen(YtdlpRequest("u", max_height=480), offered(), tmp_path) == ["h264-480", "audio"]
    assert chosen(YtdlpRequest("u", max_height=720), offered(), tmp_path) == ["h264-720", "audio"]
    # without H.264: VP9 before AV1 (yt-dlp's own order would take AV1)
    assert chosen(YtdlpRequest("u", max_height=480), offered(codecs=("vp9", "av1")), tmp_path) == ["vp9-480", "audio"]
    assert chosen(YtdlpRequest("u", max_height=480), offered(codecs=("av1",)), tmp_path) == ["av1-480", "audio"]


def test_the_height_cap_is_soft_unless_strict(tmp_path):
    big = offered(heights=(720, 1080))
    assert chosen(YtdlpRequest("u", max_height=480), big, tmp_path) == ["h264-720", "audio"]  # the smallest above
    from yt_dlp.utils import DownloadError, ExtractorError

    strict = YtdlpRequest("u", max_height=480, strict_height=True)
    with pytest.raises((DownloadError, ExtractorError), match="Requested format is not available") as e:
        chosen(strict, big, tmp_path)
    assert failure(_Logger(), e.value, strict).reason == "no_format_under_cap"
    assert failure(_Logger(), e.value, YtdlpRequest("u")).reason == "no_suitable_format"


def test_a_users_own_format_and_sort_pass_through(tmp_path):
    assert chosen(YtdlpRequest("u", max_height=480, format_sort=("res:480",)), offered(), tmp_path) == \
        ["av1-480", "audio"]  # yt-dlp's codec order back
    assert chosen(YtdlpRequest("u", format="bv*[vcodec^=vp9]+ba"), offered(), tmp_path) == ["vp9-1080", "audio"]  # its own order


def test_format_options_from_the_command_line_and_yaml():
    assert DownloadConfig(format_sort="res:720, vcodec:vp9").format_sort == ("res:720", "vcodec:vp9")
    assert DownloadConfig(format_sort=["res:720"]).format_sort == ("res:720",)
    res = CliRunner().invoke(download_cmd, ["--help"])
    assert "--strict-height" in res.output and "--format-sort" in res.output
