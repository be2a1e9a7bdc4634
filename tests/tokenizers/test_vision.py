"""Vision tokens: patch features, identical and shifted frames, resizing, bad JPEGs, fitting from frames."""
import numpy as np
import pytest

from mmdata.errors import ConfigError, ItemError
from mmdata.testing.workdirs import make_work
from mmdata.tokenizers import load_tokenizers
from mmdata.tokenizers.fit import fit_vision
from mmdata.tokenizers.vision import PatchFeatures, VisionFitConfig, VisionTokenizer, load_frames, to_square
from tests.tokenizers.helpers import clip, commit, jpeg_bytes, put_frames, scene


@pytest.fixture(scope="module")
def tok():
    frames = np.stack([scene(s) for s in range(12)])
    feats = PatchFeatures()(frames).reshape(-1, PatchFeatures.dim)
    return VisionTokenizer.fit(feats, PatchFeatures(), VisionFitConfig(k=32, iters=10, pca_dim=32))


def test_identical_frames_give_identical_tokens(tok):
    f = scene(100)
    out = tok.encode_frames(np.stack([f, f.copy(), scene(101)]))
    assert out.shape == (3, 14, 14) and out.dtype == np.uint16
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])


def test_frame_shifted_by_one_patch_gives_shifted_tokens(tok):
    f = scene(7)
    right = np.roll(f, 16, axis=1)  # one patch to the right
    down = np.roll(f, 16, axis=0)  # one patch down
    t, tr, td = tok.encode_frames(np.stack([f, right, down]))
    assert np.array_equal(tr[:, 1:], t[:, :-1])
    assert np.array_equal(td[1:, :], t[:-1, :])
    assert len(np.unique(t)) > 4  # the frame is not one flat token


def test_shift_survives_jpeg(tok, tmp_path):
    """Through JPEG (16-pixel shifts keep the 8x8/16x16 block grid) most tokens still shift exactly."""
    f = scene(9)
    for name, img in (("a.jpg", f), ("b.jpg", np.roll(f, 16, axis=1))):
        (tmp_path / name).write_bytes(jpeg_bytes(img, quality=95))
    t, tr = tok.encode_files([tmp_path / "a.jpg", tmp_path / "b.jpg"])
    assert (tr[:, 1:] == t[:, :-1]).mean() > 0.9


def test_other_frame_sizes_are_resized_and_centre_cropped(tok, tmp_path):
    wide = scene(3, size=(240, 320))
    sq = to_square(wide)
    assert sq.shape == (224, 224, 3)
    (tmp_path / "w.jpg").write_bytes(jpeg_bytes(wide))
    assert tok.encode_files([tmp_path / "w.jpg"]).shape == (1, 14, 14)
    assert to_square(scene(4)) is not None and np.array_equal(to_square(scene(4)), scene(4))


def test_batches_give_the_same_tokens_as_one_pass(tok, tmp_path):
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(jpeg_bytes(scene(20 + i)))
    assert np.array_equal(tok.encode_files(paths, batch_frames=2), tok.encode_files(paths, batch_frames=8))


def test_bad_frame_files_are_item_errors(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ItemError) as e:
        load_frames([tmp_path / "bad.jpg"])
    assert e.value.reason == "corrupt_file" and "bad.jpg" in e.value.detail
    with pytest.raises(ItemError) as e:
        load_frames([tmp_path / "gone.jpg"])
    assert e.value.reason == "missing_output_file"


def test_fit_vision_from_work_folder(tmp_path):
    clips = [clip(f"v{i}_0_2000") for i in range(4)] + [clip("audio_0_2000", kind="audio"), clip("bad_0_2000")]
    work = make_work(tmp_path / "work", clips)
    for i in range(4):
        put_frames(work, f"v{i}_0_2000", [scene(10 * i + k, size=(180, 320)) for k in range(3)])
    put_frames(work, "audio_0_2000", None)  # no video stream
    commit(work, "frames", "bad_0_2000", {"present": True, "files": ["000000.jpg"]}, {"000000.jpg": b"junk"})
    cfg = VisionFitConfig(k=24, iters=5, pca_dim=16, max_patches=1500, max_frames_per_clip=2, seed=1)
    a = fit_vision(work, tmp_path / "tok", cfg)
    assert a["vocab_size"] == 24 and a["grid"] == [14, 14] and a["pca_dim"] == 16
    assert a["fit"]["n_patches"] == 1500 and a["fit"]["skipped"] == {"corrupt_file": 1}
    assert a["fit"]["n_clips"] == 4
    assert fit_vision(work, tmp_path / "tok2", cfg)["hash"] == a["hash"]
    vt = load_tokenizers(tmp_path / "tok")["vision"]
    paths = [work.item_dir("frames", "v0_0_2000") / "000000.jpg"]
    assert vt.encode_files(paths).shape == (1, 14, 14)


def test_vision_config_errors():
    with pytest.raises(ConfigError, match="max_patches"):
        VisionFitConfig(k=1024, max_patches=100)
    with pytest.raises(ConfigError, match="encoder"):
        VisionFitConfig(encoder="clip")
