"""The tokenizers and quantize commands end to end (click's runner, real files, local executor)."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from mmdata.commands.tokenizers import quantize_cmd, tokenizers_group
from mmdata.testing.speech import spoken_corpus
from mmdata.testing.workdirs import make_work
from mmdata.workdir import WorkDir
from tests.tokenizers.helpers import clip, put_align, put_audio, put_frames, scene


@pytest.fixture
def work(tmp_path, espeak_cache):
    w = make_work(tmp_path / "work", [clip("a_0_2000"), clip("b_0_2000")])
    for i, words in enumerate((["apple", "river"], ["sugar", "window"])):
        sp = spoken_corpus(words, speeds=(150,), cache=espeak_cache)
        put_audio(w, f"{['a', 'b'][i]}_0_2000", sp.wav)
        put_align(w, f"{['a', 'b'][i]}_0_2000", " ".join(words), sp.words)
        put_frames(w, f"{['a', 'b'][i]}_0_2000", [scene(3 * i + k) for k in range(2)])
    return w


def run(cmd, args):
    res = CliRunner().invoke(cmd, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.output


def test_fit_report_quantize(work, tmp_path):
    root = work.root
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tokenizers:\n  speech:\n    k: 12\n    iters: 3\n")
    assert run(tokenizers_group, ["fit-text", "--work", root, "--vocab-size", 270])[0] == 0
    code, out = run(tokenizers_group, ["fit-speech", "--work", root, "--config", cfg])
    assert code == 0 and "speech tokenizer: vocab 12" in out  # from the YAML section
    code, out = run(tokenizers_group, ["fit-vision", "--work", root, "--k", 16, "--iters", 3, "--pca-dim", 8,
                                       "--max-patches", 700])
    assert code == 0 and "vision tokenizer: vocab 16" in out
    index = json.loads((root / "tokenizers" / "index.json").read_text())
    assert sorted(index["tokenizers"]) == ["speech", "text", "vision"]

    code, out = run(tokenizers_group, ["report", "--work", root, "--json"])
    rep = json.loads(out)
    assert code == 0 and rep["speech"]["usage_stats"]["vocab_size"] == 12
    assert rep["speech"]["word_labels"]["labels"] == 4 and 0 < rep["speech"]["word_labels"]["pnmi"] <= 1
    code, out = run(tokenizers_group, ["report", "--tokenizers", root / "tokenizers"])
    assert code == 0 and "unigram perplexity" in out and "vision: vocab 16" in out

    code, out = run(quantize_cmd, ["--work", root, "--no-progress"])
    assert code == 0 and "ok 2, failed 0" in out
    stok = np.load(WorkDir(root).item_dir("quantize", "a_0_2000") / "stok.npy")
    assert stok.dtype == np.uint16 and stok.max() < 12
    assert np.load(WorkDir(root).item_dir("quantize", "b_0_2000") / "vtok.npy").shape == (2, 14, 14)


def test_usage_errors_exit_2(work, tmp_path):
    code, out = run(tokenizers_group, ["fit-speech", "--work", work.root, "--k", 1])
    assert code == 2 and "SpeechFitConfig.k = 1" in out
    code, out = run(quantize_cmd, ["--work", work.root, "--tokenizers", tmp_path / "nothing", "--no-progress"])
    assert code == 2 and "nothing does not exist" in out
    code, out = run(tokenizers_group, ["fit-vision", "--work", work.root, "--encoder", "vit"])
    assert code == 2 and "checkpoint" in out


def test_a_refit_with_other_options_is_refused_then_forced(work):
    """The set records what each tokenizer was fitted with; `fit-*` with other options refuses naming them,
    `--force` fits again, and quantize then refuses its chunks made with the old one until forced too."""
    root = work.root
    for args in (["fit-text", "--vocab-size", 270], ["fit-vision", "--k", 16, "--iters", 3, "--pca-dim", 8,
                                                       "--max-patches", 700]):
        assert run(tokenizers_group, [args[0], "--work", root, *args[1:]])[0] == 0
    assert run(tokenizers_group, ["fit-speech", "--work", root, "--k", 12, "--iters", 3])[0] == 0
    speech = json.loads((root / "tokenizers" / "speech" / "config.json").read_text())
    assert speech["fit_options"] == {"k": 12, "iters": 3, "max_frames": 200000, "max_clips": 0, "seed": 0,
                                     "encoder": "mfcc", "checkpoint": None, "layer": 6, "window_s": 30.0,
                                     "fit_chunks": 0}  # device is not there: where k-means runs
    assert run(quantize_cmd, ["--work", root, "--no-progress"])[0] == 0

    code, out = run(tokenizers_group, ["fit-speech", "--work", root, "--k", 8, "--iters", 3])
    assert code == 2 and "nothing was fitted" in out
    assert f"the speech tokenizer in {root}/tokenizers was fitted with other options: k 12 -> 8." in out
    assert "--force" in out
    assert json.loads((root / "tokenizers" / "speech" / "config.json").read_text())["hash"] == speech["hash"]
    # the same options, or only where it runs: fitted again as before (same data, same seed: same tokenizer)
    code, out = run(tokenizers_group, ["fit-speech", "--work", root, "--k", 12, "--iters", 3, "--device", "cpu"])
    assert code == 0 and f"hash {speech['hash'][:16]}" in out

    code, out = run(tokenizers_group, ["fit-speech", "--work", root, "--k", 8, "--iters", 3, "--force"])
    assert code == 0 and "speech tokenizer: vocab 8" in out
    code, out = run(quantize_cmd, ["--work", root, "--no-progress"])
    assert code == 2 and "quantize: 1 of 1 chunk(s) were made with other options: tokenizers" in out
    code, out = run(quantize_cmd, ["--work", root, "--no-progress", "--force"])
    assert code == 0 and "ok 2, failed 0" in out
    assert np.load(WorkDir(root).item_dir("quantize", "a_0_2000") / "stok.npy").max() < 8
