"""Fitting the tokenizers on a damaged work store: a clip whose stage output does not read (a chunk table row or a
whole table, a pack cut short, a file swapped for a real broken one) is left out and counted by reason in the
fit's `skipped`, never a crash; with nothing left that reads, the error says what was left out."""
import shutil

import pytest

from mmdata.errors import ConfigError
from mmdata.testing.corpus import make_corpus
from mmdata.testing.workdirs import cut_object, edit_table_row, replace_file
from mmdata.tokenizers.fit import fit_speech, fit_text, fit_vision
from mmdata.tokenizers.speech import SpeechFitConfig
from mmdata.tokenizers.text import TextFitConfig
from mmdata.tokenizers.vision import VisionFitConfig
from mmdata.workdir import WorkDir

FIRST = "vid000_0_2000"  # has every modality; of the 6 clips, 5 have frames, 5 audio, 5 text
FIT = {"text": (fit_text, TextFitConfig(vocab_size=280, min_frequency=1)),
       "speech": (fit_speech, SpeechFitConfig(k=4, iters=3)),
       "vision": (fit_vision, VisionFitConfig(k=4, iters=3, pca_dim=8, max_frames_per_clip=1))}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("pristine"), 6)


@pytest.fixture
def work(pristine, tmp_path):
    shutil.copytree(pristine.work.root, tmp_path / "work")
    return WorkDir(tmp_path / "work")


def fit(work, which, tmp_path):
    fn, cfg = FIT[which]
    return fn(WorkDir(work.root), tmp_path / f"tok-{which}", cfg)


@pytest.mark.parametrize("which,damage,skipped", [
    ("text", lambda w, rm: edit_table_row(w, "align", FIRST, meta='{"present": true, "words": 5}'),
     {"unreadable_output": 1}),
    ("speech", lambda w, rm: edit_table_row(w, "audio", FIRST, meta="{not json"), {"unreadable_output": 1}),
    ("speech", lambda w, rm: replace_file(w, "audio", FIRST, "audio.flac",
                                          (rm / "mutagen_truncated-64bit.mp4").read_bytes()), {"corrupt_file": 1}),
    ("vision", lambda w, rm: edit_table_row(w, "frames", FIRST, span="[]"), {"unreadable_output": 1}),
    ("vision", lambda w, rm: replace_file(w, "frames", FIRST, "000000.jpg",
                                          (rm / "exoplayer_invalid-bitstream.webm").read_bytes()),
     {"corrupt_file": 1}),
])
def test_a_damaged_clip_is_skipped_with_its_reason(work, tmp_path, realmedia, which, damage, skipped):
    damage(work, realmedia)
    info = fit(work, which, tmp_path)["fit"]
    assert info["skipped"] == skipped
    if which != "text":
        assert info["n_clips"] == 4


def test_a_pack_cut_short_skips_the_clips_it_lost(work, tmp_path):
    cut_object(work, f"audio/{work.read_table('audio', 0).pack}", 0.5)
    info = fit(work, "speech", tmp_path)["fit"]
    assert list(info["skipped"]) == ["missing_output_file"]
    assert info["n_clips"] + info["skipped"]["missing_output_file"] == 5 and info["n_clips"] >= 1


def test_nothing_readable_left_says_what_was_left_out(work, tmp_path):
    cut_object(work, work.table_rel("frames", 0), 0.5)
    with pytest.raises(ConfigError, match=r"no clip .* has frames that reads \(left out: \{'unreadable_output': 6\}\)"):
        fit(work, "vision", tmp_path)
