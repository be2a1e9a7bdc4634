"""Image-caption corpora: CC3M/LAION-shaped manifests, images fetched over HTTP from 127.0.0.1 and checked
(404, not an image, an HTML page labelled .jpg, truncated, 1x1), then frames -> align -> quantize -> shard,
giving one-frame samples (vision + language, no speech)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmdata.manifests.normalize import load_manifest, source_id
from mmdata.manifests.table import import_manifest
from mmdata.media.config import FramesConfig
from mmdata.pipelines.align import AlignStage
from mmdata.pipelines.download import DownloadConfig, DownloadStage, says_nothing
from mmdata.pipelines.frames import FramesStage
from mmdata.pipelines.quantize import QuantizeConfig, QuantizeStage
from mmdata.pipelines.status import read_all_status
from mmdata.shards.build import ShardConfig, build_shards
from mmdata.shards.stats import corpus_stats
from mmdata.testing.server import MediaServer
from mmdata.tokenizers import load_tokenizers
from mmdata.tokenizers.fit import fit_text, fit_vision
from mmdata.tokenizers.text import TextFitConfig
from mmdata.tokenizers.vision import VisionFitConfig
from mmdata.workdir import WorkDir
from tests.dual.conftest import read_webdataset, run_stages, write_images

CAPTIONS = {
    "boat.jpg": "a red boat on a calm lake",
    "tower.png": "a tall tower against the sky",
    "img?id=3": "a circle on a striped background",
    "wide.jpg": "a green field between two red walls",
    "missing.jpg": "a photo that is gone",
    "notes.jpg": "notes that are not a picture",
    "login.jpg": "a photo behind a login page",
    "trunc.jpg": "half of a photo",
    "dot.png": "a single grey pixel",
}
GOOD = ("boat.jpg", "tower.png", "img?id=3", "wide.jpg")
BAD = {"missing.jpg": "http_404", "notes.jpg": "not_an_image", "login.jpg": "wrong_content_type",
       "trunc.jpg": "not_an_image", "dot.png": "image_too_small"}


def test_caption_manifest_shapes_give_the_same_clips(tmp_path):
    """CC3M/CC12M TSV (no header, caption<TAB>url), LAION parquet (URL, TEXT) and a generic CSV agree."""
    urls = {name: f"https://images.example.com/{name}" for name in CAPTIONS}
    (tmp_path / "cc3m.tsv").write_text("".join(f"{CAPTIONS[n]}\t{u}\n" for n, u in urls.items()))
    pq.write_table(pa.table({"URL": list(urls.values()), "TEXT": [CAPTIONS[n] for n in urls],
                             "WIDTH": [640] * len(urls), "similarity": [0.3] * len(urls)}), tmp_path / "laion.parquet")
    (tmp_path / "generic.csv").write_text("url,caption\n" + "".join(f"{u},{CAPTIONS[n]}\n" for n, u in urls.items()))
    shapes = [load_manifest(tmp_path / f) for f in ("cc3m.tsv", "laion.parquet", "generic.csv")]
    assert shapes[0] == shapes[1] == shapes[2]
    clips = {c.url.rsplit("/", 1)[1]: c for c in shapes[0]}
    assert clips["boat.jpg"].caption == "a red boat on a calm lake" and clips["boat.jpg"].text is None
    assert clips["boat.jpg"].key == f"{clips['boat.jpg'].video_id}_full"
    assert {n: c.kind for n, c in clips.items()} == {n: "video" if n == "img?id=3" else "image" for n in CAPTIONS}


def test_which_links_are_asked_for_their_content_type():
    asked = ["https://cdn.example.com/img?id=3", "https://example.com/download.php?f=7",
             "https://example.com/media/8812"]
    not_asked = ["https://images.example.com/a.JPG", "https://example.com/get.flac?sig=1",
                 "https://example.com/v.webm", "https://www.youtube.com/watch?v=abc", "https://youtu.be/abc",
                 "https://player.vimeo.com/video/1"]
    assert [says_nothing(u) for u in asked + not_asked] == [True] * len(asked) + [False] * len(not_asked)


@pytest.fixture(scope="module")
def image_corpus(tmp_path_factory):
    """The CC3M-shaped manifest above, served for real, through download -> frames -> align -> fit -> quantize
    -> shard. Frames are kept in the shards so the test can look at the pixels."""
    root = tmp_path_factory.mktemp("images")
    served = root / "served"
    types = write_images(served)
    with MediaServer(served, content_types=types) as srv:
        manifest = root / "captions.tsv"
        manifest.write_text("".join(f"{cap}\t{srv.url(name)}\n" for name, cap in CAPTIONS.items()))
        work = WorkDir(root / "work")
        import_manifest(work, manifest, chunk_size=4)
        summaries = run_stages(work, DownloadStage(DownloadConfig(allow_local=True, retries=0, timeout_s=10)))
        counts = dict(srv.counts)
    summaries |= run_stages(work, FramesStage(FramesConfig(frames=4, size=224)), AlignStage())
    tok = root / "tokenizers"
    fit_text(work, tok, TextFitConfig(vocab_size=300, min_frequency=1))
    fit_vision(work, tok, VisionFitConfig(k=16, iters=5, pca_dim=16, max_patches=600, device="cpu"))
    summaries |= run_stages(work, QuantizeStage(QuantizeConfig(tokenizers=str(tok), device="cpu")))
    out = root / "shards"
    shard = build_shards(work, out, ShardConfig(tokenizers=str(tok), keep=("frames",), prefix="img"), progress=False)
    urls = {name: srv.url(name) for name in CAPTIONS}
    return work, tok, out, summaries, shard, counts, urls


def test_download_checks_every_image(image_corpus):
    work, _, _, summaries, _, counts, urls = image_corpus
    rows = {r.key: r for r in read_all_status(work, "download")}
    by_name = {name: rows[source_id(url)] for name, url in urls.items()}
    assert {n: r.reason for n, r in by_name.items() if r.status == "error"} == BAD
    assert all(by_name[n].status == "ok" for n in GOOD) and summaries["download"].ok == len(GOOD)
    assert "text/html" in by_name["login.jpg"].detail and "1x1" in by_name["dot.png"].detail
    # the link without an extension was asked for its Content-Type (once), then fetched directly, not by yt-dlp
    img = work.meta("download", source_id(urls["img?id=3"]))
    assert (img["kind"], img["kind_from"], img["media"]) == ("image", "content_type", "media.jpg")
    assert img["info"]["content_type"] == "image/jpeg" and img["probe"] == {"width": 256, "height": 256,
                                                                          "format": "JPEG"}
    assert counts["HEAD /img?id=3"] == 1 and counts["/img?id=3"] == 1
    boat = work.meta("download", source_id(urls["boat.jpg"]))
    assert (boat["kind"], boat["kind_from"]) == ("image", "manifest") and counts["/boat.jpg"] == 1
    assert not any(k.startswith("HEAD") and k != "HEAD /img?id=3" for k in counts)  # .jpg/.png links: no HEAD


def test_one_frame_samples(image_corpus):
    work, tok, out, summaries, shard, _, urls = image_corpus
    assert summaries["frames"].ok == len(GOOD) and summaries["quantize"].ok == len(GOOD)
    assert shard.samples == len(GOOD)
    samples = read_webdataset(out)
    text_tok = load_tokenizers(tok, device="cpu")["text"]
    by_name = {name: samples.get(f"{source_id(url)}_full") for name, url in urls.items()}
    assert all(by_name[n] is None for n in BAD)
    for name in GOOD:
        s = by_name[name]
        meta = s["json"]
        assert meta["modalities"] == ["vision", "language"] and meta["kind"] == "image"
        assert s["fields"] == ["frame0000.jpg", "json", "ttok.npy", "txt", "vtok.npy"]  # no stok.npy
        assert s["vtok.npy"].dtype == np.uint16 and s["vtok.npy"].shape == (1, 14, 14)
        assert s["vtok.npy"].max() < 16
        assert s["txt"] == CAPTIONS[name] == meta["caption"]
        assert s["ttok.npy"].dtype == np.int32 and text_tok.decode(s["ttok.npy"]).strip() == CAPTIONS[name]
        assert meta["frame_times"] == [0.0] and meta["frame_size"] == [224, 224]
        assert (meta["start_s"], meta["duration_s"], meta["words"]) == (0.0, 0.0, [])
        assert meta["audio_sample_rate"] is None and meta["stok_rate_hz"] is None
    assert work.meta("frames", f"{source_id(urls['tower.png'])}_full")["still_image"] is True


def test_frames_are_cropped_like_video_frames(image_corpus):
    """wide.jpg is 672x224 with red 224-px bands at both ends: resized to short side 224 and centre-cropped,
    only its green middle is left."""
    from io import BytesIO

    from PIL import Image

    _, _, out, _, _, _, urls = image_corpus
    s = read_webdataset(out)[f"{source_id(urls['wide.jpg'])}_full"]
    frame = np.asarray(Image.open(BytesIO(s["raw"]["frame0000.jpg"])).convert("RGB")).astype(int)
    assert frame.shape == (224, 224, 3)
    assert np.abs(frame - [0, 200, 0]).max(axis=2)[:, 4:-4].max() < 40  # all green, bar JPEG ringing at the edge


def test_stats_count_the_modality_combination(image_corpus):
    _, _, out, _, _, _, _ = image_corpus
    stats = corpus_stats(out, progress=False)
    assert dict(stats.combos) == {"vision+language": len(GOOD)}
    assert stats.token_counts["vision"].sum() == len(GOOD) * 14 * 14
    assert "vision+language" in stats.render()


def test_pipeline_fits_only_the_tokenizers_the_corpus_needs(image_corpus, tmp_path):
    """`mmdata run` on an image-caption corpus: text and vision tokenizers, no speech (no clip has audio)."""
    import yaml

    from mmdata.pipelines.pipeline import PipelineConfig, run_pipeline

    work = image_corpus[0]
    spec = {"manifest": "unused.tsv", "work": str(work.root), "out": str(tmp_path / "out"), "stages": ["tokenizers"],
            "tokenizers": {"dir": str(tmp_path / "tok"), "text": {"vocab_size": 300, "min_frequency": 1},
                           "vision": {"k": 16, "iters": 5, "pca_dim": 16, "max_patches": 600, "device": "cpu"}}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    [result] = run_pipeline(PipelineConfig.from_yaml(tmp_path / "p.yaml", {"progress": False}))
    assert (result.stage, result.ok, result.failed) == ("tokenizers", 2, 0)
    assert "none for speech (no clip has that modality)" in result.note
    assert sorted(p.parent.name for p in (tmp_path / "tok").glob("*/config.json")) == ["text", "vision"]


def test_content_type_from_get_headers_when_head_is_refused(tmp_path):
    """A server that answers HEAD with 405: the kind comes from the headers of a GET instead."""
    from mmdata.fetch.direct import content_type

    served = tmp_path / "served"
    served.mkdir()
    (served / "img").write_bytes(b"\xff\xd8\xff\xe0fake-jpeg-bytes")
    with MediaServer(served, content_types={"img": "image/jpeg"}, refuse_head=True) as srv:
        assert content_type(srv.url("img?id=3"), timeout_s=5) == "image/jpeg"
        counts = dict(srv.counts)
    assert counts == {"HEAD /img?id=3": 1, "/img?id=3": 1}
