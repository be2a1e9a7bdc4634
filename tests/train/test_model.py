"""The fusion model: shapes, padding invariance, modality-alone embeddings, both fusion kinds."""
import pytest
import torch

from mmdata.train.data import TrainLoader, resolve_vocab
from mmdata.train.model import PretrainModel
from mmdata.train.samples import merge


@pytest.fixture(params=["merge", "coattn"])
def setup(request, tiny):
    cfg = resolve_vocab(tiny(model={"fusion": request.param}))
    torch.manual_seed(0)
    return cfg, PretrainModel(cfg.model).eval(), next(TrainLoader(cfg))


def test_forward_shapes(setup):
    cfg, model, batch = setup
    out = model(batch)
    for m, n_vocab in (("vision", 80), ("speech", 48), ("language", 21)):
        t = batch.mod(m)
        n_tgt = int((t.tgt & t.valid).sum())
        assert n_tgt > 0
        assert out["logits"][m].shape == (n_tgt, n_vocab)
        assert out["labels"][m].shape == (n_tgt,) and int(out["labels"][m].max()) < n_vocab
        emb = out["emb"][m]
        assert emb.shape == (len(batch), cfg.model.d_model)
        norms = emb.norm(dim=1)
        has = batch.present[:, ["vision", "speech", "language"].index(m)]
        assert torch.allclose(norms[has], torch.ones(int(has.sum())), atol=1e-5)
        assert (norms[~has] == 0).all()  # rows without the modality stay zero (and are never paired)
    assert torch.isfinite(out["logit_scale"]).all()


def test_padding_does_not_change_results(setup):
    """A sample alone and the same sample padded inside a larger batch give the same outputs."""
    cfg, model, batch = setup
    with torch.no_grad():
        one = batch_slice(batch, 0)
        alone = model(one)
        together = model(batch)
    for m in alone["emb"]:
        assert torch.allclose(alone["emb"][m][0], together["emb"][m][0], atol=1e-5)
    for m in alone["logits"]:
        n = len(alone["logits"][m])
        assert torch.allclose(alone["logits"][m], together["logits"][m][:n], atol=1e-4)


def test_batch_without_a_modality_is_finite(setup):
    cfg, model, batch = setup
    rows = (~batch.present[:, 1]).nonzero().squeeze(1)  # samples without speech, if any
    if len(rows) == 0:
        rows = torch.tensor([0])
        batch.present[0, 1] = False
        batch.speech.valid[0] = False
    sub = merge([batch_slice(batch, int(i)) for i in rows], cfg)
    out = model(sub)
    assert "speech" not in out["logits"] and "speech" not in out["emb"]
    assert all(torch.isfinite(v).all() for v in out["logits"].values())


def batch_slice(batch, i):
    from mmdata.train.samples import Batch, Tokens

    def cut(t):
        n = max(1, int(t.valid[i].sum()))
        return Tokens(t.tok[i:i + 1, :n], t.inp[i:i + 1, :n], t.tgt[i:i + 1, :n], t.valid[i:i + 1, :n], t.pos[i:i + 1, :n])

    return Batch([batch.keys[i]], batch.present[i:i + 1], cut(batch.vision), cut(batch.speech), cut(batch.language))
