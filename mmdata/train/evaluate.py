"""Cross-modal retrieval on held-out shards: R@1 and R@5 for v->l, l->v, v->s, s->v, l->s, s->l.

Every held-out sample is embedded once per modality it has (clean tokens, each modality alone through its
encoder and the fusion network, mean-pooled, normalised: the embeddings the contrastive loss trains).
For a direction a->b the gallery is the samples that have both a and b; samples lacking either are left
out of that direction. A query's rank counts the gallery items scoring at least as high as its own pair
(ties count against it, so a collapsed model scores chance, not 100%).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from mmdata.errors import ConfigError, ItemError
from mmdata.train.checkpoint import load_checkpoint
from mmdata.train.config import MODALITIES, TrainConfig
from mmdata.train.data import expand_shards, read_vocab
from mmdata.train.samples import Batch, Preprocess, collate

log = logging.getLogger("mmdata.train.eval")
DIRECTIONS = (("vision", "language"), ("language", "vision"), ("vision", "speech"), ("speech", "vision"),
              ("language", "speech"), ("speech", "language"))
KS = (1, 5)


def direction_name(a: str, b: str) -> str:
    return f"{a[0]}->{b[0]}"


def eval_batches(cfg: TrainConfig, urls: list[str], batch_size: int, stats: dict) -> Iterator[Batch]:
    """One ordered pass over the shards: no shuffle, no masking; bad samples are counted and skipped."""
    import webdataset as wds

    pre, buf = Preprocess(cfg, train=False), []
    for raw in wds.tarfile_to_samples(handler=_count_bad_shard(stats))(iter([{"url": u} for u in urls])):
        try:
            buf.append(pre(raw))
        except ItemError as e:
            stats["skipped"][e.reason] = stats["skipped"].get(e.reason, 0) + 1
            log.warning("skipping held-out sample %s: %s", raw.get("__key__"), e)
            continue
        if len(buf) == batch_size:
            yield collate(buf, cfg)
            buf = []
    if buf:
        yield collate(buf, cfg)


def _count_bad_shard(stats: dict):
    def handler(exn: Exception) -> bool:
        stats["skipped"]["unreadable_shard_data"] = stats["skipped"].get("unreadable_shard_data", 0) + 1
        log.warning("skipping unreadable held-out shard data: %s", exn)
        return True

    return handler


def embed_all(model, cfg: TrainConfig, urls: list[str], batch_size: int, device, stats: dict):
    """({modality: [N, D] embeddings (zeros where absent)}, presence [N, 3], keys)."""
    import torch

    embs, present, keys = {m: [] for m in MODALITIES}, [], []
    with torch.no_grad():
        for batch in eval_batches(cfg, urls, batch_size, stats):
            batch = batch.to(device)
            for i, m in enumerate(MODALITIES):
                embs[m].append(model.embed_alone(m, batch.mod(m), batch.present[:, i]).float().cpu())
            present.append(batch.present.cpu())
            keys += batch.keys
    if not keys:
        raise ConfigError(f"no readable held-out sample in {len(urls)} shard(s) (first: {urls[0]})")
    return {m: torch.cat(v) for m, v in embs.items()}, torch.cat(present), keys


def retrieval(embs: dict, present, a: str, b: str) -> dict:
    """R@k of querying with modality a for the same sample's modality b."""
    rows = present[:, MODALITIES.index(a)] & present[:, MODALITIES.index(b)]
    n = int(rows.sum())
    if n < 2:
        return {"n": n, "skipped": "fewer than 2 samples have both modalities"}
    sims = embs[a][rows] @ embs[b][rows].t()  # [n, n]: query i, gallery j
    rank = (sims >= sims.diag()[:, None]).sum(1) - 1  # gallery items at least as close as the true pair
    out = {"n": n}
    for k in KS:
        out[f"R@{k}"] = float((rank < k).double().mean())
        out[f"chance@{k}"] = min(1.0, k / n)
    return out


def evaluate(checkpoint: str | Path, shards: list[str], batch_size: int = 64, device: str = "auto",
             untrained: bool = False) -> dict:
    """Retrieval of the checkpoint's model on `shards`; `untrained=True` measures the same architecture at
    its seeded initialisation instead, the baseline that shows what training bought."""
    import torch

    from mmdata.train.loop import pick_device
    from mmdata.train.model import PretrainModel

    ckpt = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(ckpt["config"])
    urls = [u for spec in shards for u in expand_shards(spec)]
    _check_tokenizers(cfg, urls)
    dev = pick_device(device)
    torch.manual_seed(cfg.seed)
    model = PretrainModel(cfg.model, cfg.init_temperature)
    if not untrained:
        model.load_state_dict(ckpt["model"])
    model.to(dev).eval()
    stats = {"skipped": {}}
    embs, present, keys = embed_all(model, cfg, urls, batch_size, dev, stats)
    results = {direction_name(a, b): retrieval(embs, present, a, b) for a, b in DIRECTIONS}
    counts = {m: int(present[:, i].sum()) for i, m in enumerate(MODALITIES)}
    return {"checkpoint": ckpt["path"], "step": 0 if untrained else ckpt["step"], "samples": len(keys),
            "modalities": counts,
            "skipped": stats["skipped"], "retrieval": results}


def _check_tokenizers(cfg: TrainConfig, urls: list[str]) -> None:
    """Held-out shards tokenized by other tokenizers would give meaningless numbers: refuse them."""
    for m, tok in read_vocab(urls).items():
        trained = cfg.model.tokenizers.get(m)
        if trained and tok.get("hash") and tok["hash"] != trained:
            raise ConfigError(f"held-out shards use a different {m} tokenizer (hash {tok['hash']!r}) than the "
                              f"checkpoint was trained with ({trained!r})")


def format_table(report: dict) -> str:
    lines = [f"retrieval on {report['samples']} held-out samples (step {report['step']})",
             f"{'direction':<10}{'n':>7}{'R@1':>9}{'R@5':>9}{'chance@1':>10}"]
    for name, r in report["retrieval"].items():
        if "skipped" in r:
            lines.append(f"{name:<10}{r['n']:>7}   skipped: {r['skipped']}")
        else:
            lines.append(f"{name:<10}{r['n']:>7}{r['R@1']:>9.3f}{r['R@5']:>9.3f}{r['chance@1']:>10.3f}")
    if report["skipped"]:
        lines.append("skipped samples: " + ", ".join(f"{k}={v}" for k, v in sorted(report["skipped"].items())))
    return "\n".join(lines)
