import base64
import io
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mmdata.commands.shards import inspect_cmd, shard_cmd, stats_cmd
from mmdata.shards.inspect import PANELS, decode_flac, describe, draw_contact_sheet, find_sample
from mmdata.shards.stats import PLOTS, corpus_stats


def test_find_by_key_and_by_shard(built):
    shard, key, fields = find_sample(built.out, "vid001_2000_4000")
    assert (shard, key) == ("shard-000000-000001.tar", "vid001_2000_4000") and "json" in fields
    assert find_sample(built.out, "shard-000000-000001.tar", 2)[1] == "vid003_0_2000"
    assert find_sample(built.out, "shard-000000-000002")[1] == "vid003_2000_4000"


def test_describe_names_metadata_words_and_token_shapes(built):
    text = describe(*find_sample(built.out, "vid000_0_2000"))
    assert "key: vid000_0_2000   (shard shard-000000-000000.tar)" in text
    assert "modalities: vision, speech, language" in text
    assert "frames: 4 at 2.0 fps, times (s): 0.25 0.75 1.25 1.75" in text
    assert "vtok.npy: uint16 [4, 14, 14]" in text and "stok.npy: uint16 [100]" in text
    assert "ttok.npy: int32 [6]" in text and "license: CC BY 4.0" in text
    assert re.search(r"0\.050\s+0\.283\s+red\s+\[forced\]", text)


def test_flac_field_decodes_to_the_clip(built):
    _, _, fields = find_sample(built.out, "vid000_0_2000")
    samples, rate = decode_flac(fields["flac"])
    assert rate == 16000 and len(samples) == 32000
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * rate / len(samples) - 220.0) < 2  # topic 0's tone


def test_contact_sheet_panels(built):
    _, key, fields = find_sample(built.out, "vid000_0_2000")
    fig = draw_contact_sheet(key, fields)
    labels = [ax.get_label() for ax in fig.axes]
    assert set(labels) == set(PANELS)
    assert labels.count("frames") == 4 and labels.count("vision tokens") == 4
    titles = {ax.get_title() for ax in fig.axes}
    assert {"0.25 s", "0.75 s", "1.25 s", "1.75 s"} <= titles
    word_texts = {t.get_text() for ax in fig.axes if ax.get_label() == "words" for t in ax.texts}
    assert word_texts == {"red", "apple", "sweet", "fruit", "tree", "garden"}
    wave = next(ax for ax in fig.axes if ax.get_label() == "waveform")
    assert len(wave.lines) == 1 and wave.get_xlim() == (0.0, 2.0)


def test_inspect_cli_writes_png(built, tmp_path):
    png = tmp_path / "sheet.png"
    res = CliRunner().invoke(inspect_cmd, [str(built.out), "vid001_0_2000", "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "modalities: vision, language" in res.output and f"contact sheet: {png}" in res.output
    img = Image.open(png)
    assert img.format == "PNG" and img.size[0] > 800 and img.size[1] > 800
    assert img.text["Title"] == "vid001_0_2000" and all(p in img.text["Description"] for p in PANELS)
    assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 20  # drawn, not blank


def test_contact_sheet_of_sample_without_kept_media(built):
    """vid001_0_2000 lacks speech: its waveform panel says so rather than failing."""
    _, key, fields = find_sample(built.out, "vid001_0_2000")
    fig = draw_contact_sheet(key, fields)
    wave = next(ax for ax in fig.axes if ax.get_label() == "waveform")
    assert [t.get_text() for t in wave.texts] == ["no speech in this clip"]


def test_inspect_unknown_target_is_usage_error(built):
    res = CliRunner().invoke(inspect_cmd, [str(built.out), "nope_0_1"])
    assert res.exit_code == 2 and "neither a shard" in res.output


def test_stats_text(built):
    stats = corpus_stats(built.out, progress=False)
    assert (stats.clips, stats.shards) == (7, 3)
    assert stats.hours == pytest.approx(14 / 3600)
    assert dict(stats.combos) == {"vision+speech+language": 3, "vision+language": 2, "speech+language": 1,
                                  "vision+speech": 1}
    assert sorted(stats.words) == [0] + [6] * 6
    assert int(stats.token_counts["vision"].sum()) == 6 * 4 * 14 * 14
    assert int(stats.token_counts["speech"].sum()) == 5 * 100 and len(stats.token_counts["speech"]) == 200
    text = stats.render()
    assert "clips: 7   hours: 0.004" in text and "download:http_404" in text
    assert "frames:no_video_stream" in text and "clips left out of the shards: 3" in text
    assert re.search(r"speech\s+500 tokens, \d+/200 ids used", text)


def test_stats_html(built, tmp_path):
    page = tmp_path / "stats.html"
    res = CliRunner().invoke(stats_cmd, [str(built.out), "--html", str(page), "--work", str(built.corpus.work.root),
                                         "--no-progress"])
    assert res.exit_code == 0, res.output
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for title in PLOTS.values():
        assert f"<h2>{title}</h2>" in html
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', html)
    assert [alt for alt, _ in images] == list(PLOTS.values())
    for _, b64 in images:
        assert Image.open(io.BytesIO(base64.b64decode(b64))).size[0] > 300
    summary = json.loads(re.search(r'<script type="application/json" id="summary">(.*?)</script>', html).group(1))
    assert summary["clips"] == 7 and summary["failures"] == {"download": {"http_404": 1},
                                                             "frames": {"no_video_stream": 1}}


def test_shard_cli_summary_and_exit_code(corpus, tmp_path):
    out = tmp_path / "o"
    res = CliRunner().invoke(shard_cmd, ["--work", str(corpus.work.root), "--out", str(out), "--tokenizers",
                                         str(corpus.tokenizers), "--keep", "frames", "--max-samples", "4",
                                         "--shard-size", "1MB", "--prefix", "demo", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "shard: 10 clips -> 7 samples in 2 shards" in res.output
    assert "download:http_404" in res.output
    index = json.loads((out / "index.json").read_text())
    assert [s["name"] for s in index["shards"]] == ["demo-000000-000000.tar", "demo-000000-000001.tar"]
    assert index["corpus"]["shard"] == {"prefix": "demo", "shard_size": 10**6, "max_samples": 4, "keep": ["frames"]}
    bad = CliRunner().invoke(shard_cmd, ["--work", str(corpus.work.root), "--out", str(out), "--shard-size", "x"])
    assert bad.exit_code == 2 and "shard_size" in bad.output


def test_shard_cli_reads_yaml_section(corpus, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("shard:\n  max_samples: 2\n  keep: [audio]\n")
    res = CliRunner().invoke(shard_cmd, ["--work", str(corpus.work.root), "--out", str(tmp_path / "o"),
                                         "--config", str(cfg), "--no-progress"])
    assert res.exit_code == 0, res.output
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert [s["samples"] for s in index["shards"]] == [2, 2, 2, 1]
    assert index["corpus"]["shard"]["keep"] == ["audio"]
