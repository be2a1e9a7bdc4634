"""The fusion model: per-modality token embeddings and encoders, a fusion transformer (merge-attention or
co-attention), and heads that predict masked tokens. Shapes in comments: B batch, N tokens, D d_model,
H heads, V a modality's vocabulary (+3 special ids: pad, mask, cls).

    vision   ids [B, Nv] + time/row/col ─┐
    speech   ids [B, Ns] + time ─────────┼─ encoder per modality ─ fusion (+ modality-ID) ─ heads ─ logits
    language ids [B, Nl] + position ─────┘

`forward(batch)` runs the joint pass on the masked inputs (targets only go through the heads) and the
unimodal pass of each modality alone on its clean tokens (mean-pooled, L2-normalised) for the
contrastive losses, so that one call returns everything the loss needs (which DDP wants).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdata.train.config import MODALITIES, ModelConfig
from mmdata.train.samples import N_SPECIAL, Batch, Tokens

PAIRS = (("vision", "language"), ("vision", "speech"), ("language", "speech"))


class Attention(nn.Module):
    """Multi-head attention of x over ctx (ctx = x for self-attention), with a key padding mask."""

    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.h, self.dropout = n_heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_valid: torch.Tensor) -> torch.Tensor:
        b, nq, d = x.shape
        nk = ctx.shape[1]
        q = self.q(x).view(b, nq, self.h, d // self.h).transpose(1, 2)  # [B, H, Nq, D/H]
        k, v = self.kv(ctx).view(b, nk, 2, self.h, d // self.h).permute(2, 0, 3, 1, 4)  # 2 x [B, H, Nk, D/H]
        has_key = ctx_valid.any(1)  # [B]
        allowed = ctx_valid.clone()
        allowed[:, 0] |= ~has_key  # a row with no valid key attends to slot 0 (no NaN) ...
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, nq, d)  # [B, Nq, D]
        return self.proj(y) * has_key[:, None, None].to(y.dtype)  # ... and adds nothing


class MLP(nn.Module):
    def __init__(self, d: int, mult: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(d, mult * d)
        self.proj = nn.Linear(mult * d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention over valid tokens, then MLP."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = Attention(c.d_model, c.n_heads, c.dropout)
        self.mlp = MLP(c.d_model, c.ffn_mult, c.dropout)

    def attend(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:  # [B, N, D], [B, N]
        h = self.ln1(x)
        return x + self.attn(h, h, valid)

    def feed(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.ln2(x))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.feed(self.attend(x, valid))


class CoBlock(nn.Module):
    """One modality's co-attention layer: self-attention, cross-attention to the other modalities, MLP
    (the self-attention and MLP halves of a Block, with the cross-attention between them)."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.self_block = Block(c)
        self.ln_q, self.ln_kv = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.cross = Attention(c.d_model, c.n_heads, c.dropout)

    def cross_attend(self, x: torch.Tensor, ctx: torch.Tensor, ctx_valid: torch.Tensor) -> torch.Tensor:
        return x + self.cross(self.ln_q(x), self.ln_kv(ctx), ctx_valid)


class VisionEmbedding(nn.Module):
    def __init__(self, c: ModelConfig):
        super().__init__()
        self.tok = nn.Embedding(c.vocab_vision + N_SPECIAL, c.d_model)
        self.time = nn.Embedding(c.max_frames, c.d_model)
        self.row = nn.Embedding(c.grid, c.d_model)
        self.col = nn.Embedding(c.grid, c.d_model)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:  # [B, N], [B, N, 3]
        return self.tok(ids) + self.time(pos[..., 0]) + self.row(pos[..., 1]) + self.col(pos[..., 2])


class SequenceEmbedding(nn.Module):
    """Speech units (position = time at 50 Hz) or text tokens (position = index)."""

    def __init__(self, vocab: int, max_len: int, d: int):
        super().__init__()
        self.tok = nn.Embedding(vocab + N_SPECIAL, d)
        self.pos = nn.Embedding(max_len, d)

    def forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:  # [B, N], [B, N, 1]
        return self.tok(ids) + self.pos(pos[..., 0])


class Encoder(nn.Module):
    def __init__(self, c: ModelConfig, n_layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(Block(c) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(c.d_model)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, valid)
        return self.ln_f(x)


class MergeFusion(nn.Module):
    """Merge-attention: one transformer over the concatenation of all modalities present."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.modality = nn.Embedding(len(MODALITIES), c.d_model)
        self.encoder = Encoder(c, c.fusion_layers)

    def forward(self, hs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        names = list(hs)
        x = torch.cat([hs[m][0] + self.modality.weight[MODALITIES.index(m)] for m in names], 1)  # [B, ΣN, D]
        valid = torch.cat([hs[m][1] for m in names], 1)  # [B, ΣN]
        out = self.encoder(x, valid).split([hs[m][0].shape[1] for m in names], 1)
        return dict(zip(names, out))


class CoAttentionFusion(nn.Module):
    """Co-attention: per-modality self-attention, then cross-attention to the other modalities' tokens."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        self.modality = nn.Embedding(len(MODALITIES), c.d_model)
        self.layers = nn.ModuleList(nn.ModuleDict({m: CoBlock(c) for m in MODALITIES}) for _ in range(c.fusion_layers))
        self.ln_f = nn.ModuleDict({m: nn.LayerNorm(c.d_model) for m in MODALITIES})

    def forward(self, hs: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
        valid = {m: v for m, (_, v) in hs.items()}
        x = {m: h + self.modality.weight[MODALITIES.index(m)] for m, (h, _) in hs.items()}
        for layer in self.layers:
            x = {m: layer[m].self_block.attend(x[m], valid[m]) for m in x}
            if len(x) > 1:  # alone (the contrastive pass), a modality has nothing to cross-attend to
                ctx = {m: (torch.cat([x[o] for o in x if o != m], 1), torch.cat([valid[o] for o in x if o != m], 1))
                       for m in x}
                x = {m: layer[m].cross_attend(x[m], *ctx[m]) for m in x}
            x = {m: layer[m].self_block.feed(x[m]) for m in x}
        return {m: self.ln_f[m](x[m]) for m in x}


FUSIONS = {"merge": MergeFusion, "coattn": CoAttentionFusion}


class PretrainModel(nn.Module):
    def __init__(self, c: ModelConfig, init_temperature: float = 0.07):
        super().__init__()
        self.config = c
        self.embed = nn.ModuleDict({
            "vision": VisionEmbedding(c),
            "speech": SequenceEmbedding(c.vocab_speech, c.max_speech, c.d_model),
            "language": SequenceEmbedding(c.vocab_text, c.max_text, c.d_model),
        })
        self.encoders = nn.ModuleDict({m: Encoder(c, c.enc_layers) for m in MODALITIES})
        self.fusion = FUSIONS[c.fusion](c)
        self.heads = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(c.d_model), nn.Linear(c.d_model, c.vocab(m)))
                                    for m in MODALITIES})
        # CLIP's learnable temperature, one per contrastive pair, stored as log(1 / T)
        self.logit_scale = nn.Parameter(torch.full((len(PAIRS),), math.log(1 / init_temperature)))
        self.apply(self._init)

    @staticmethod
    def _init(mod: nn.Module) -> None:
        if isinstance(mod, (nn.Linear, nn.Embedding)):
            nn.init.normal_(mod.weight, std=0.02)
        if isinstance(mod, nn.Linear) and mod.bias is not None:
            nn.init.zeros_(mod.bias)

    def encode(self, m: str, t: Tokens, ids: torch.Tensor) -> torch.Tensor:
        return self.encoders[m](self.embed[m](ids, t.pos), t.valid)  # [B, N, D]

    def forward(self, batch: Batch) -> dict:
        here = [m for i, m in enumerate(MODALITIES) if bool(batch.present[:, i].any())]
        # joint pass on masked inputs; only target positions go through the (vocab-sized) heads
        hs = {m: (self.encode(m, batch.mod(m), batch.mod(m).inp), batch.mod(m).valid) for m in here}
        fused = self.fusion(hs)
        logits, labels = {}, {}
        for m in here:
            t = batch.mod(m)
            sel = t.tgt & t.valid  # [B, N]
            logits[m] = self.heads[m](fused[m][sel])  # [n_targets, V]
            labels[m] = t.tok[sel]  # [n_targets]
        emb = {m: self.embed_alone(m, batch.mod(m), batch.present[:, MODALITIES.index(m)]) for m in here}
        return {"logits": logits, "labels": labels, "emb": emb, "logit_scale": self.logit_scale.exp()}

    def embed_alone(self, m: str, t: Tokens, rows: torch.Tensor) -> torch.Tensor:
        """[B, D] unit vectors for the rows that have modality m (zeros elsewhere): clean tokens through the
        encoder and the fusion network alone, mean-pooled over valid tokens."""
        idx = rows.nonzero().squeeze(1)  # [b]
        if idx.numel() == 0:
            return torch.zeros(len(rows), self.config.d_model, device=rows.device)
        sub = Tokens(*(x[idx] for x in (t.tok, t.inp, t.tgt, t.valid, t.pos)))
        h = self.fusion({m: (self.encode(m, sub, sub.tok), sub.valid)})[m]  # [b, N, D]
        w = sub.valid.unsqueeze(-1).to(h.dtype)
        pooled = F.normalize((h * w).sum(1) / w.sum(1).clamp(min=1), dim=-1)  # [b, D]
        out = torch.zeros(len(rows), h.shape[-1], dtype=pooled.dtype, device=pooled.device)
        return out.index_copy(0, idx, pooled)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
