"""Retrieval metrics on hand-made embeddings: ranks, ties, absent modalities."""
import math

import torch

from mmdata.train.evaluate import retrieval


def _embs(v, l):
    return {"vision": torch.tensor(v, dtype=torch.float), "language": torch.tensor(l, dtype=torch.float),
            "speech": torch.zeros(len(v), 2)}


def _circle(degrees):
    return [[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in degrees]


def test_ranks_and_recall():
    v = _circle([0, 60, 120, 180, 240, 300])
    lang = _circle([0, 170, 120, 180, 240, 300])  # sample 1's text points elsewhere
    present = torch.ones(6, 3, dtype=torch.bool)
    r = retrieval(_embs(v, lang), present, "vision", "language")
    # query 1 (60 deg) scores texts 0 and 2 (60 deg away) above its own (110 deg away): rank 3
    assert r["n"] == 6 and r["R@1"] == 5 / 6 and r["R@5"] == 1.0 and r["chance@1"] == 1 / 6
    r = retrieval(_embs(v, lang), present, "language", "vision")
    # text 1 (170 deg) is closest to vision 3 (180) and 2 (120): rank 3 as well
    assert r["R@1"] == 5 / 6


def test_ties_count_against_the_query():
    same = [[1, 0]] * 4
    r = retrieval(_embs(same, same), torch.ones(4, 3, dtype=torch.bool), "vision", "language")
    assert r["R@1"] == 0.0  # a collapsed model scores nothing, not 100%


def test_samples_missing_a_modality_are_left_out():
    v = [[1, 0], [0, 1], [0, 0]]
    present = torch.tensor([[True, False, True], [True, False, True], [True, False, False]])
    r = retrieval(_embs(v, v), present, "vision", "language")
    assert r["n"] == 2 and r["R@1"] == 1.0
    assert retrieval(_embs(v, v), present, "vision", "speech") == {
        "n": 0, "skipped": "fewer than 2 samples have both modalities"}
