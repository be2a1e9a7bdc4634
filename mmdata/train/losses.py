"""The pretraining objective, normalised so that N ranks (and K accumulation micro-steps) give the gradient
one process would compute on the whole global batch.

    loss = 0.5 MLM + 0.6 MVM + 1 MSM + 1 (InfoNCE v-l + v-s + l-s)

Masked-token losses are sums over a rank's targets divided by the *global* number of targets of that
modality (counted before the forward pass, over all ranks and micro-steps). Contrastive losses use the
embeddings of every rank (all_gather in the forward pass); only the local rows carry gradient, and the
exact partial derivatives add up across ranks. DDP averages gradients over ranks, so each rank
multiplies its loss by the world size; the temperature's gradient, which every rank computes in full,
is scaled back. No collective runs in the backward pass, so nothing can interleave with DDP's own.
A pair whose two modalities are present together in fewer than two samples of the global batch is
skipped (not counted as zero).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmdata.train.config import MODALITIES, TrainConfig
from mmdata.train.model import PAIRS
from mmdata.train.samples import Batch

MASKED = {"language": "mlm", "vision": "mvm", "speech": "msm"}
PAIR_NAMES = tuple(f"con_{a[0]}{b[0]}" for a, b in PAIRS)  # con_vl, con_vs, con_ls
PARTS = ("mlm", "mvm", "msm") + PAIR_NAMES


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(x)
        return x


@dataclass
class StepCounts:
    """Global counts for one optimiser step, known before any forward pass."""
    targets: dict[str, float]  # modality -> masked targets over all ranks and micro-steps
    pair_steps: list[list[bool]]  # [micro-step][pair] -> the pair has >= 2 samples in that global micro-batch

    def active_steps(self, p: int) -> int:
        return sum(step[p] for step in self.pair_steps)


def count_step(micro: list[Batch], dist: DistInfo, device) -> StepCounts:
    rows = []
    for b in micro:
        n_tgt = [float((b.mod(m).tgt & b.mod(m).valid).sum()) for m in MODALITIES]
        pres = b.present
        n_pair = [float((pres[:, MODALITIES.index(a)] & pres[:, MODALITIES.index(c)]).sum()) for a, c in PAIRS]
        rows.append(n_tgt + n_pair)
    c = dist.all_reduce(torch.tensor(rows, dtype=torch.float64, device=device)).cpu()  # [K, 3 + 3]
    targets = {m: float(c[:, i].sum()) for i, m in enumerate(MODALITIES)}
    return StepCounts(targets, [[bool(x >= 2) for x in row[3:]] for row in c.tolist()])


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over matching rows of two [n, D] unit-vector sets."""
    logits = scale * a @ b.t()  # [n, n]
    labels = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def gather_embeddings(out: dict, batch: Batch, b_max: int, d_model: int,
                      dist: DistInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' embeddings [world * b_max, 3, D] and presence [world * b_max, 3]; this rank's block keeps
    its gradient, the other ranks' are constants. Rows are padded to b_max (absent, never selected)."""
    dev = out["logit_scale"].device
    b = len(batch)
    emb = torch.stack([out["emb"][m].float() if m in out["emb"] else torch.zeros(b, d_model, device=dev)
                       for m in MODALITIES], 1)  # [b, 3, D]
    pres = batch.present.to(dev)  # [b, 3]
    if dist.world == 1:
        return emb, pres
    import torch.distributed as tdist

    emb = F.pad(emb, (0, 0, 0, 0, 0, b_max - b))  # [b_max, 3, D]
    pres = F.pad(pres.to(torch.uint8), (0, 0, 0, b_max - b))  # [b_max, 3]
    embs = [torch.empty_like(emb) for _ in range(dist.world)]
    press = [torch.empty_like(pres) for _ in range(dist.world)]
    tdist.all_gather(embs, emb.detach().contiguous())
    tdist.all_gather(press, pres.contiguous())
    embs[dist.rank] = emb
    return torch.cat(embs), torch.cat(press).bool()


def objective(out: dict, batch: Batch, counts: StepCounts, step_i: int, cfg: TrainConfig, b_max: int,
              dist: DistInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss to backward on this rank, parts [len(PARTS) + 1] whose all-reduced sum over ranks and
    micro-steps is the step's global value of each objective and, last, of the weighted total)."""
    world = dist.world
    parts = {}
    for m, name in MASKED.items():
        if m in out["logits"] and counts.targets[m] > 0:
            ce = F.cross_entropy(out["logits"][m].float(), out["labels"][m], reduction="sum")
            parts[name] = ce / counts.targets[m]
    emb, pres = gather_embeddings(out, batch, b_max, cfg.model.d_model, dist)
    scale = out["logit_scale"].clamp(max=100.0)
    scale = scale.detach() + (scale - scale.detach()) / world  # every rank computes its full gradient
    for p, ((a, c), name) in enumerate(zip(PAIRS, PAIR_NAMES)):
        if not counts.pair_steps[step_i][p]:
            continue  # fewer than two samples with both modalities: skip the pair
        ia, ic = MODALITIES.index(a), MODALITIES.index(c)
        rows = pres[:, ia] & pres[:, ic]
        loss = info_nce(emb[rows, ia], emb[rows, ic], scale[p])
        parts[name] = loss / counts.active_steps(p)
    weights = {"mlm": cfg.w_mlm, "mvm": cfg.w_mvm, "msm": cfg.w_msm}
    w = {n: weights.get(n, cfg.w_contrastive) for n in PARTS}
    # what all-reduce adds up: masked parts are already shares; contrastive ones are the same on every rank
    shares = {n: v.detach() / (world if n in PAIR_NAMES else 1) for n, v in parts.items()}
    zero = out["logit_scale"].new_zeros(()).detach()
    logged = [shares.get(n, zero) for n in PARTS]
    logged = torch.stack(logged + [sum((w[n] * v for n, v in shares.items()), zero)])
    total = sum((w[n] * v for n, v in parts.items()), out["logit_scale"].sum() * 0.0)
    return total * world, logged
