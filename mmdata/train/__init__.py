"""The bundled trainer: i-Code-style pretraining on the shards mmdata writes.

Modules, in the order data flows through them:

    config.py    TrainConfig / ModelConfig, presets (tiny, icode), YAML
    samples.py   one webdataset sample -> token arrays (decode, crop, mask); a list of them -> Batch
    masking.py   MLM (30%, 80/10/10), 3-D tube masking for vision, span masking for speech
    data.py      shard specs, vocab discovery, the deterministic stream loader (split by rank and worker)
    model.py     embeddings, per-modality encoders, fusion (merge- or co-attention), heads
    losses.py    masked-token losses and gathered InfoNCE, normalised so DDP == one process
    loop.py      the training loop: AdamW, warm-up + cosine, accumulation, clipping, checkpoints, logs
    evaluate.py  cross-modal retrieval (R@1, R@5) on held-out shards
    launch.py    `--nproc N` through torch's elastic launcher

torch is imported inside these modules only; importing `mmdata.train` alone stays light.
"""
