"""Feature plug-ins from local checkpoints, tested with randomly initialised weights saved to a file."""
import numpy as np
import pytest
import torch

from mmdata.errors import ConfigError
from mmdata.testing.speech import spoken_corpus
from mmdata.testing.workdirs import make_work
from mmdata.tokenizers import load_tokenizers
from mmdata.tokenizers.encoders import SpeechEncoderFeatures
from mmdata.tokenizers.fit import fit_speech, fit_vision
from mmdata.tokenizers.speech import SpeechFitConfig, make_speech_features
from mmdata.tokenizers.vision import VisionFitConfig, make_vision_features
from tests.tokenizers.helpers import clip, put_align, put_audio, put_frames, scene

# the wav2vec2 feature extractor's kernels and strides (400-sample field, 320 hop) with 16 channels
CONV = [(16, 10, 5), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 3, 2), (16, 2, 2), (16, 2, 2)]
COMMON = dict(extractor_mode="group_norm", extractor_conv_layer_config=CONV, extractor_conv_bias=False,
              encoder_embed_dim=32, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=16,
              encoder_pos_conv_groups=4, encoder_num_layers=3, encoder_num_heads=2, encoder_attention_dropout=0.0,
              encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
              encoder_layer_norm_first=False, encoder_layer_drop=0.0, aux_num_out=None)


def tiny_checkpoint(path, factory="wav2vec2_model", seed=0):
    import torchaudio.models

    kwargs = dict(COMMON)
    if factory == "wavlm_model":
        kwargs.update(encoder_num_buckets=16, encoder_max_distance=32)
    torch.manual_seed(seed)
    model = getattr(torchaudio.models, factory)(**kwargs)
    torch.save({"factory": factory, "factory_kwargs": kwargs, "state_dict": model.state_dict()}, path)
    return path


@pytest.mark.parametrize("encoder,factory", [("hubert", "wav2vec2_model"), ("wavlm", "wavlm_model")])
def test_encoder_features_are_50hz_from_the_chosen_layer(tmp_path, encoder, factory):
    ckpt = tiny_checkpoint(tmp_path / "m.pt", factory)
    f = make_speech_features(encoder, str(ckpt), layer=2)
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    for n in (16000, 16000 + 319, 3200, 320, 319):
        assert f(x[:n] if n <= 16000 else np.pad(x, (0, n - 16000))).shape == (n // 320, 32)
    assert f.config()["dim"] == 32 and f.config()["layer"] == 2
    # layer 2 is not layer 3: the plug-in really takes the layer it is asked for
    f3 = make_speech_features(encoder, str(ckpt), layer=3)
    assert not np.allclose(f(x), f3(x))
    assert np.array_equal(f(x), f(x))  # eval mode: no dropout, deterministic


def test_bad_checkpoints_and_layers_are_config_errors(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    x = np.zeros(3200, np.float32)
    with pytest.raises(ConfigError, match="layers 1..3"):
        SpeechEncoderFeatures("hubert", ckpt, layer=7)(x)
    with pytest.raises(ConfigError, match="not a wavlm model"):
        SpeechEncoderFeatures("wavlm", ckpt, layer=1)(x)
    with pytest.raises(ConfigError, match="does not fit hubert_base"):  # a plain state_dict of another shape
        torch.save(torch.load(ckpt, weights_only=True)["state_dict"], tmp_path / "plain.pt")
        SpeechEncoderFeatures("hubert", tmp_path / "plain.pt", layer=1)(x)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable torch weights file"):
        SpeechEncoderFeatures("hubert", tmp_path / "junk.pt", layer=1)(x)
    with pytest.raises(ConfigError, match="needs --checkpoint"):
        make_speech_features("hubert", None)


def test_fit_speech_with_hubert_plugin_and_reload(tmp_path, espeak_cache):
    ckpt = tiny_checkpoint(tmp_path / "hubert.pt")
    clips = [clip(f"s{i}_0_2000") for i in range(2)]
    work = make_work(tmp_path / "work", clips)
    for i, words in enumerate((["apple", "river"], ["sugar", "window"])):
        sp = spoken_corpus(words, speeds=(150, 200), cache=espeak_cache)
        put_audio(work, f"s{i}_0_2000", sp.wav)
        put_align(work, f"s{i}_0_2000", " ".join(words), sp.words)
    cfg = SpeechFitConfig(k=8, iters=5, encoder="hubert", checkpoint=str(ckpt), layer=2, device="cpu")
    saved = fit_speech(work, tmp_path / "tok", cfg)
    fc = saved["features"]
    assert fc["encoder"] == "hubert" and fc["layer"] == 2 and fc["dim"] == 32 and len(fc["checkpoint_sha256"]) == 64
    tok = load_tokenizers(tmp_path / "tok", device="cpu")["speech"]
    wav = spoken_corpus(["apple"], speeds=(150,), cache=espeak_cache).wav
    units = tok.encode(wav)
    assert units.shape == (len(wav) // 320,) and units.dtype == np.uint16 and units.max() < 8
    # a different file at the checkpoint path changes the features: loading refuses it
    tiny_checkpoint(ckpt, seed=1)
    with pytest.raises(ConfigError, match="missing or different"):
        load_tokenizers(tmp_path / "tok", device="cpu")


@pytest.mark.slow
def test_hubert_base_from_a_plain_state_dict(tmp_path):
    """The default factory path: a full-size hubert_base state_dict (random weights, ~380 MB file)."""
    import torchaudio.models

    torch.manual_seed(0)
    torch.save(torchaudio.models.hubert_base().state_dict(), tmp_path / "hubert_base.pt")
    f = make_speech_features("hubert", str(tmp_path / "hubert_base.pt"), layer=6)
    out = f(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    assert out.shape == (50, 768)


def test_vit_plugin(tmp_path):
    """Patch features from a tiny randomly initialised torchvision ViT saved to a local file."""
    import torchvision.models as tvm

    torch.manual_seed(0)
    kwargs = dict(image_size=224, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
    vit = tvm.VisionTransformer(**kwargs)
    torch.save({"factory": "VisionTransformer", "factory_kwargs": kwargs, "state_dict": vit.state_dict()},
               tmp_path / "vit.pt")
    f = make_vision_features("vit", str(tmp_path / "vit.pt"))
    out = f(np.stack([scene(0), scene(1)]))
    assert out.shape == (2, 196, 32)
    clips = [clip(f"v{i}_0_2000") for i in range(2)]
    work = make_work(tmp_path / "work", clips)
    for i in range(2):
        put_frames(work, f"v{i}_0_2000", [scene(5 * i + k) for k in range(2)])
    cfg = VisionFitConfig(k=8, iters=3, pca_dim=8, max_patches=784, encoder="vit", checkpoint=str(tmp_path / "vit.pt"),
                          device="cpu")
    saved = fit_vision(work, tmp_path / "tok", cfg)
    assert saved["features"]["encoder"] == "vit" and saved["features"]["dim"] == 32
    vt = load_tokenizers(tmp_path / "tok", device="cpu")["vision"]
    assert vt.encode_frames(np.stack([scene(0)])).shape == (1, 14, 14)


def test_speech_encoders_see_long_clips_in_bounded_windows(tmp_path):
    """Attention spans one window (`window_s`), so memory per pass is bounded however long the clip; a clip
    shorter than a window gives exactly the whole-clip features; windows batch across clips."""
    ckpt = tiny_checkpoint(tmp_path / "m.pt")
    rng = np.random.default_rng(1)
    long = (0.1 * rng.standard_normal(16000 * 3 + 500)).astype(np.float32)  # 3.03 s: 3 windows of 1 s + a tail
    short = long[:16000 - 7]
    f = SpeechEncoderFeatures("hubert", ckpt, layer=2, window_s=1.0)
    assert [len(w) for w in f.windows(long)] == [16080, 16080, 16080, 320 + 80]
    whole = make_speech_features("hubert", str(ckpt), layer=2, window_s=60.0)
    assert np.array_equal(f(short), whole(short))  # one window: nothing changes
    got = f(long)
    assert got.shape == (len(long) // 320, 32)
    with torch.inference_mode():  # the first window alone, with the next 80 samples as its look-ahead
        first = f._model.extract_features(torch.from_numpy(long[:16000 + 80])[None], num_layers=2)[0][1][0]
    np.testing.assert_allclose(got[:50], first.numpy(), atol=1e-5)
    assert not np.allclose(got, whole(long), atol=1e-3)  # long context really is cut at the window edges
    alone = [f(long), f(short)]
    together = f.many([long, short])
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-5)  # float rounding only: full windows are stacked, never padded
    assert f.config()["window_s"] == 1.0
