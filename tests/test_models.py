"""Pretrained models by name (mmdata/models.py), offline: random weights placed where torch hub's cache
expects the real file (mmdata/testing/weights.py), a real HTTP server on 127.0.0.1 standing in for the
download host, and MMDATA_OFFLINE=1 so that nothing reaches for the internet."""
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmdata import models
from mmdata.commands.align import align_cmd
from mmdata.commands.tokenizers import quantize_cmd, tokenizers_group
from mmdata.errors import ConfigError
from mmdata.records import Clip
from mmdata.testing.media import make_video
from mmdata.testing.server import MediaServer
from mmdata.testing.speech import spoken_corpus, spoken_words
from mmdata.testing.weights import place_random_weights
from mmdata.testing.workdirs import add_downloaded, make_work
from mmdata.tokenizers import load_tokenizers
from mmdata.tokenizers.speech import SpeechFitConfig
from mmdata.utils import sha256_file
from mmdata.workdir import WorkDir
from tests.tokenizers.helpers import clip, put_align, put_audio, put_frames, scene


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A cache of this module's own; no downloads."""
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.setenv(models.OFFLINE_ENV, "1")
        yield home


def run(cmd, args):
    res = CliRunner().invoke(cmd, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def test_names_resolve_to_the_libraries_bundles_and_cache_paths(torch_home):
    hub = torch_home / "hub" / "checkpoints"
    h = models.resolve("hubert_base", "speech")
    assert h.source == "torchaudio.pipelines.HUBERT_BASE"
    assert h.url == "https://download.pytorch.org/torchaudio/models/hubert_fairseq_base_ls960.pth"
    assert h.cache_path() == hub / "hubert_fairseq_base_ls960.pth"
    assert models.resolve("wavlm_base_plus", "speech").source == "torchaudio.pipelines.WAVLM_BASE_PLUS"
    w = models.resolve("wav2vec2_base_960h", "forced")
    assert w.source == "torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H"
    mms = models.resolve("mms_fa", "forced")
    assert mms.url == "https://dl.fbaipublicfiles.com/mms/torchaudio/ctc_alignment_mling_uroman/model.pt"
    assert mms.cache_path() == hub / "model.pt"  # torchaudio's own cache name for it
    assert models.resolve("MMS_FA", "forced").source == mms.source  # the bundle's own name works too
    v = models.resolve("vit_b_16", "vision")
    assert v.source == "torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1"
    assert v.cache_path() == hub / "vit_b_16-c867db91.pth"
    with pytest.raises(ConfigError, match="not a pretrained forced model"):
        models.resolve("hubert_base", "forced")  # no CTC labels: cannot align
    with pytest.raises(ConfigError, match="not a pretrained speech model.*hubert_base"):
        models.resolve("hubert_bsae", "speech")
    with pytest.raises(ConfigError, match="not a torchvision ViT"):
        models.resolve("resnet50", "vision")
    with pytest.raises(ConfigError, match="has no 'NOPE'"):
        models.resolve("vit_b_16:NOPE", "vision")


def test_offline_without_the_file_names_it_and_where_it_goes(torch_home, tmp_path):
    h = models.resolve("wavlm_base_plus", "speech")
    with pytest.raises(ConfigError) as e:
        SpeechFitConfig(encoder="wavlm_base_plus")
    assert h.url in str(e.value) and str(h.cache_path()) in str(e.value) and "MMDATA_OFFLINE" in str(e.value)
    work = make_work(tmp_path / "work", [clip("a_0_2000")])
    code, out = run(tokenizers_group, ["fit-speech", "--work", work.root, "--speech-encoder", "wavlm_base_plus"])
    assert code == 2 and h.url in out and str(h.cache_path()) in out
    v = models.resolve("vit_l_16", "vision")
    code, out = run(tokenizers_group, ["fit-vision", "--work", work.root, "--vision-encoder", "vit_l_16"])
    assert code == 2 and v.url in out and str(v.cache_path()) in out
    mms = models.resolve("mms_fa", "forced")
    code, out = run(align_cmd, ["--work", work.root, "--forced-model", "mms_fa", "--no-progress"])
    assert code == 2 and mms.url in out and str(mms.cache_path()) in out
    assert not WorkDir(work.root).has_table("align", 0)  # before any work
    from mmdata.pipelines.align import AlignConfig

    with pytest.raises(ConfigError, match=str(mms.cache_path())):
        AlignConfig(forced_bundle="MMS_FA")  # the older option name means the same model


def test_a_missing_file_is_downloaded_into_the_cache_with_its_hash_checked(torch_home, tmp_path, monkeypatch):
    """The download host is a real HTTP server on 127.0.0.1 (the internet is not reachable here)."""
    monkeypatch.delenv(models.OFFLINE_ENV)
    served = tmp_path / "served"
    served.mkdir()
    body = b"weights " * 1000
    prefix = hashlib.sha256(body).hexdigest()[:8]
    (served / f"vit_b_16-{prefix}.pth").write_bytes(body)
    (served / "vit_b_16-deadbeef.pth").write_bytes(body)
    base = models.resolve("vit_b_16", "vision")
    with MediaServer(served) as server:
        good = dataclasses.replace(base, url=server.url(f"vit_b_16-{prefix}.pth"))
        assert models.weights_file(good) == good.cache_path() and good.cache_path().read_bytes() == body
        bad = dataclasses.replace(base, url=server.url("vit_b_16-deadbeef.pth"))
        with pytest.raises(ConfigError, match="the download failed") as e:
            models.weights_file(bad)  # torchvision's hash prefix in the name does not match the bytes
        assert str(bad.cache_path()) in str(e.value) and not bad.cache_path().exists()
        gone = dataclasses.replace(base, url=server.url("vit_b_16-0000.pth"))
        with pytest.raises(ConfigError, match="HTTPError"):
            models.weights_file(gone)
    good.cache_path().unlink()


@pytest.fixture(scope="module")
def espeak_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("espeak")


@pytest.fixture(scope="module")
def hubert_base(torch_home):
    return place_random_weights("hubert_base", "speech")


def test_fit_speech_with_hubert_base_by_name(torch_home, hubert_base, tmp_path, espeak_cache):
    """Full-size HuBERT base (95M parameters, random weights) from the cache: the config names the model
    and the sha256 of the cached file; quantize loads it back from the cache."""
    keys = ["a_0_2000", "b_0_2000"]
    work = make_work(tmp_path / "work", [clip(k) for k in keys])
    for k, words in zip(keys, (["apple", "river"], ["sugar", "window"])):
        sp = spoken_corpus(words, speeds=(170,), cache=espeak_cache)
        put_audio(work, k, sp.wav)
        put_align(work, k, " ".join(words), sp.words)
    code, out = run(tokenizers_group, ["fit-speech", "--work", work.root, "--speech-encoder", "hubert_base",
                                       "--layer", 3, "--k", 4, "--iters", 2, "--device", "cpu"])
    assert code == 0, out
    fc = json.loads((Path(work.root) / "tokenizers" / "speech" / "config.json").read_text())["features"]
    assert fc["encoder"] == "hubert_base" and fc["model"] == "torchaudio.pipelines.HUBERT_BASE"
    assert fc["weights_url"].endswith("/hubert_fairseq_base_ls960.pth") and fc["checkpoint"] is None
    assert fc["checkpoint_sha256"] == sha256_file(hubert_base) and fc["dim"] == 768 and fc["layer"] == 3
    code, out = run(quantize_cmd, ["--work", work.root, "--workers", 1, "--no-progress", "--device", "cpu"])
    assert code == 0 and "ok 2, failed 0" in out, out
    stok = np.load(WorkDir(work.root).item_dir("quantize", "a_0_2000") / "stok.npy")
    assert stok.dtype == np.uint16 and stok.max() < 4 and len(stok) > 0
    # other weights at the cache path: the tokenizer refuses them rather than make other tokens
    saved = hubert_base.read_bytes()
    place_random_weights("hubert_base", "speech", seed=1)
    try:
        with pytest.raises(ConfigError, match="missing or different"):
            load_tokenizers(Path(work.root) / "tokenizers", device="cpu")
    finally:
        hubert_base.write_bytes(saved)


def test_align_with_wav2vec2_base_960h_by_name(torch_home, tmp_path):
    """Forced alignment of manifest text with the full-size WAV2VEC2_ASR_BASE_960H architecture (random
    weights, in the served layout with fairseq's extra output rows): times are meaningless, the record is not."""
    path = place_random_weights("wav2vec2_base_960h", "forced")
    media = make_video(tmp_path / "v.mp4", 1.0, size=(64, 48))
    words = "set white with p two".split()
    truth = spoken_words(words, tmp_path / "audio.flac", gap_s=0.2)
    clips = [Clip(key="t_0_3000", video_id="t", url="https://example.org/t", start_s=0.0, end_s=3.0,
                  text="Set white with P two")]
    work = make_work(tmp_path / "work", clips)
    add_downloaded(work, "t", media)
    tmp = work.temp_item_dir("audio", "t_0_3000")
    shutil.copyfile(tmp_path / "audio.flac", tmp / "audio.flac")
    work.put_item("audio", "t_0_3000", tmp, {"present": True, "file": "audio.flac", "sample_rate": 16000,
                                             "duration_s": truth[-1].end + 0.25})
    code, out = run(align_cmd, ["--work", work.root, "--forced-model", "wav2vec2_base_960h", "--workers", 1,
                                "--no-progress"])
    assert code == 0, out
    meta = WorkDir(work.root).meta("align", "t_0_3000")
    assert meta["method"] == "forced" and [w["w"] for w in meta["words"]] == ["Set", "white", "with", "P", "two"]
    starts = [w["start"] for w in meta["words"]]
    assert starts == sorted(starts) and all(w["start"] <= w["end"] for w in meta["words"])
    assert meta["aligner"] == {"name": "wav2vec2_base_960h", "checkpoint": None,
                               "checkpoint_sha256": sha256_file(path),
                               "model": "torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H",
                               "weights_url": models.resolve("wav2vec2_base_960h", "forced").url}
    # the bundle's file as served, copied anywhere, works as --checkpoint for the named model
    from mmdata.transcripts.forced import ForcedAligner, ForcedConfig

    local = shutil.copyfile(path, tmp_path / "copy.pth")
    aligner = ForcedAligner(ForcedConfig(str(local), "wav2vec2_base_960h"))
    assert aligner.record["checkpoint"] == str(local) and aligner.record["checkpoint_sha256"] == sha256_file(path)


def test_fit_vision_with_vit_b_16_by_name(torch_home, tmp_path):
    path = place_random_weights("vit_b_16", "vision")
    work = make_work(tmp_path / "work", [clip("v_0_2000")])
    put_frames(work, "v_0_2000", [scene(0), scene(1)])
    code, out = run(tokenizers_group, ["fit-vision", "--work", work.root, "--vision-encoder", "vit_b_16", "--k", 4,
                                       "--iters", 2, "--pca-dim", 8, "--max-patches", 392, "--device", "cpu"])
    assert code == 0, out
    fc = json.loads((Path(work.root) / "tokenizers" / "vision" / "config.json").read_text())["features"]
    assert fc["model"] == "torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1" and fc["dim"] == 768
    assert fc["checkpoint_sha256"] == sha256_file(path)
    vt = load_tokenizers(Path(work.root) / "tokenizers", device="cpu")["vision"]
    assert vt.encode_frames(np.stack([scene(2)])).shape == (1, 14, 14)
