"""The objective: InfoNCE, skipped pairs, and normalisation by global target counts."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmdata.train.data import TrainLoader, resolve_vocab
from mmdata.train.losses import PARTS, DistInfo, count_step, info_nce, objective
from mmdata.train.model import PretrainModel
from mmdata.train.samples import merge


def test_info_nce_values():
    torch.manual_seed(0)
    a = F.normalize(torch.randn(16, 8), dim=1)
    assert info_nce(a, a, torch.tensor(100.0)) < 1e-3  # perfectly paired, sharp temperature
    same = torch.ones(16, 8) / math.sqrt(8)
    assert info_nce(same, same, torch.tensor(10.0)).item() == pytest.approx(math.log(16), abs=1e-5)  # no signal


def _model_and_batches(cfg, n=2):
    torch.manual_seed(0)
    loader = TrainLoader(cfg)
    return PretrainModel(cfg.model), [next(loader) for _ in range(n)]


def test_pairs_with_an_absent_modality_are_skipped(tiny):
    cfg = resolve_vocab(tiny())
    model, (batch, _) = _model_and_batches(cfg)
    sub = drop(batch, "speech", keep_row=int(batch.present[:, 1].nonzero()[0]))  # one sample keeps speech
    assert int(sub.present[:, 1].sum()) == 1 and int(sub.present[:, 0].sum()) >= 2
    counts = count_step([sub], DistInfo(), "cpu")
    loss, logged = objective(model(sub), sub, counts, 0, cfg, len(sub), DistInfo())
    parts = dict(zip(PARTS + ("loss",), logged.tolist()))
    assert parts["con_vs"] == 0 and parts["con_ls"] == 0  # one speech sample: no pair to contrast
    assert parts["con_vl"] > 0 and parts["msm"] > 0 and math.isfinite(loss.item())
    weighted = 0.5 * parts["mlm"] + 0.6 * parts["mvm"] + parts["msm"] + parts["con_vl"]
    assert parts["loss"] == pytest.approx(weighted, rel=1e-6) and loss.item() == pytest.approx(weighted, rel=1e-6)


def test_masked_losses_are_normalised_by_global_counts(tiny):
    """Two micro-batches normalised by their joint target counts add up to the merged batch's loss."""
    cfg = resolve_vocab(tiny())
    model, micro = _model_and_batches(cfg)
    counts = count_step(micro, DistInfo(), "cpu")
    summed = sum(objective(model(b), b, counts, i, cfg, 8, DistInfo())[1] for i, b in enumerate(micro))
    whole = merge(micro, cfg)
    ref = objective(model(whole), whole, count_step([whole], DistInfo(), "cpu"), 0, cfg, 16, DistInfo())[1]
    for i, name in enumerate(PARTS[:3]):  # mlm, mvm, msm
        assert summed[i].item() == pytest.approx(ref[i].item(), rel=1e-4), name


def drop(batch, modality, keep_row):
    """The batch with `modality` removed from every sample but `keep_row`."""
    i = ["vision", "speech", "language"].index(modality)
    t = batch.mod(modality)
    gone = torch.ones(len(batch), dtype=torch.bool)
    gone[keep_row] = False
    batch.present[gone, i] = False
    t.valid[gone] = False
    t.tgt[gone] = False
    return batch
