from pathlib import Path

import pytest

from mmdata.testing.media import make_video, truncate_file


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory) -> Path:
    """Generated media served by the tests' HTTP server: good videos, broken files, subtitles."""
    d = tmp_path_factory.mktemp("served")
    make_video(d / "a.mp4", 2.0, tone_hz=440)
    make_video(d / "b.mp4", 1.0, audio=False)
    make_video(d / "c.mp4", 1.0, size=(160, 120))
    for i in range(6):
        make_video(d / f"s{i}.mp4", 0.4, size=(64, 48))
    truncate_file(d / "a.mp4", d / "trunc.mp4", 0.5)
    (d / "page.html").write_text("<html><body>this is a web page, not a video</body></html>\n")
    (d / "junk.bin").write_bytes(bytes((i * 7919) % 251 for i in range(20000)))  # neither media nor text
    (d / "a.vtt").write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nhello world\n")
    return d
