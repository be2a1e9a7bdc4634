"""Typed trainer config: `ModelConfig` (sizes), `CorpusSpec` (one shard set and its mixing weight) and
`TrainConfig` (everything else), with presets and YAML loading.

A config resolves in one order: dataclass defaults <- preset (`tiny`, `icode`) <- YAML `train:` section <-
CLI values that were given. The resolved config (vocabulary sizes filled in from the shards' index.json)
is stored in every checkpoint as plain types, so `mmdata eval` rebuilds the same model from it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdata.errors import ConfigError

MODALITIES = ("vision", "speech", "language")
FUSIONS = ("merge", "coattn")
PRECISIONS = ("auto", "bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")


def _need(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"train: {key} = {value!r} is not allowed; {allowed}")


@dataclass
class ModelConfig:
    d_model: int = 768
    n_heads: int = 12
    enc_layers: int = 6  # per modality
    fusion_layers: int = 6
    ffn_mult: int = 4
    fusion: str = "merge"  # merge | coattn
    dropout: float = 0.0
    max_frames: int = 16  # vision frames kept per clip (time embeddings)
    grid: int = 14  # vision token grid is at most grid x grid (2-D position embeddings)
    max_speech: int = 1500  # speech units kept per clip (50 Hz -> 30 s)
    max_text: int = 256  # text tokens kept per clip
    # 0 = read from the shards' index.json (tokenizers.<name>.vocab_size)
    vocab_vision: int = 0
    vocab_speech: int = 0
    vocab_text: int = 0
    # tokenizer hashes the vocabularies came from (index.json), so eval can refuse other tokenizers' shards
    tokenizers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for key in ("d_model", "n_heads", "enc_layers", "fusion_layers", "ffn_mult", "max_frames", "grid",
                    "max_speech", "max_text"):
            _need(getattr(self, key) >= 1, f"model.{key}", getattr(self, key), "it must be >= 1")
        _need(self.d_model % self.n_heads == 0, "model.d_model", self.d_model,
              f"it must be a multiple of model.n_heads ({self.n_heads})")
        _need(self.fusion in FUSIONS, "model.fusion", self.fusion, f"choose one of {list(FUSIONS)}")
        _need(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "it must be in [0, 1)")
        for key in ("vocab_vision", "vocab_speech", "vocab_text"):
            _need(getattr(self, key) >= 0, f"model.{key}", getattr(self, key), "it must be >= 0 (0 = from index.json)")

    def vocab(self, modality: str) -> int:
        return {"vision": self.vocab_vision, "speech": self.vocab_speech, "language": self.vocab_text}[modality]


@dataclass
class CorpusSpec:
    shards: str  # webdataset spec ('OUT/c-{000000..000009}-000000.tar', '::'-joined lists) or a shard folder
    weight: float = 1.0

    def __post_init__(self):
        _need(bool(self.shards), "data.shards", self.shards, "give a shard spec such as 'out/corpus-{000000..000009}.tar'")
        _need(self.weight > 0, "data.weight", self.weight, "weights must be > 0")


@dataclass
class TrainConfig:
    data: list[CorpusSpec] = field(default_factory=list)
    out: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    # optimisation
    steps: int = 1000
    stop_after: int = 0  # stop (with a checkpoint) after this step, keeping the schedule of `steps`; 0 = no
    batch_size: int = 256  # global samples per optimiser step (all ranks, all accumulation micro-steps)
    accum_steps: int = 1
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    grad_clip: float = 1.0
    # data
    workers: int = 2  # DataLoader workers per rank
    streams: int = 0  # deterministic sample streams; 0 = nproc * max(workers, 1). Fix it to make runs
    # with different --nproc/--workers see the same samples in the same global batches.
    shuffle_buffer: int = 1000
    resample: bool = True  # draw shards with replacement (OpenCLIP); False = shuffled passes over each stream's shards
    # objectives (i-Code)
    mlm_prob: float = 0.3
    mvm_ratio: float = 0.5
    mvm_tube_frames: int = 0  # frames in a masked tube run; 0 = all frames of the clip
    msm_prob: float = 0.08
    msm_span: int = 10
    w_mlm: float = 0.5
    w_mvm: float = 0.6
    w_msm: float = 1.0
    w_contrastive: float = 1.0
    init_temperature: float = 0.07
    # run
    nproc: int = 1
    device: str = "auto"
    precision: str = "auto"  # bf16 autocast on GPU, fp32 on CPU
    log_every: int = 10
    ckpt_every: int = 500
    keep_ckpts: int = 3
    peak_tflops: float = 0.0  # for MFU; 0 = guess from the GPU name
    max_restarts: int = 0  # elastic restarts of a failed --nproc run (each resumes from the last checkpoint)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ModelConfig(**_known(ModelConfig, self.model, "model"))
        self.data = [CorpusSpec(**_known(CorpusSpec, d, "data")) if isinstance(d, dict) else d for d in self.data]
        for key in ("steps", "batch_size", "accum_steps", "nproc", "log_every", "ckpt_every", "keep_ckpts",
                    "msm_span", "shuffle_buffer"):
            _need(getattr(self, key) >= 1, key, getattr(self, key), "it must be >= 1")
        for key in ("stop_after", "workers", "streams", "warmup_steps", "mvm_tube_frames", "max_restarts", "weight_decay",
                    "min_lr", "grad_clip", "peak_tflops", "w_mlm", "w_mvm", "w_msm", "w_contrastive"):
            _need(getattr(self, key) >= 0, key, getattr(self, key), "it must be >= 0")
        for key in ("mlm_prob", "mvm_ratio", "msm_prob"):
            _need(0.0 < getattr(self, key) <= 1.0, key, getattr(self, key), "it must be in (0, 1]")
        _need(self.lr > 0, "lr", self.lr, "it must be > 0")
        _need(0 < self.init_temperature < 1, "init_temperature", self.init_temperature, "it must be in (0, 1)")
        _need(self.batch_size % self.accum_steps == 0, "batch_size", self.batch_size,
              f"it must be a multiple of accum_steps ({self.accum_steps})")
        _need(self.device in DEVICES, "device", self.device, f"choose one of {list(DEVICES)}")
        _need(self.precision in PRECISIONS, "precision", self.precision, f"choose one of {list(PRECISIONS)}")

    @property
    def micro_batch(self) -> int:
        """Global samples per forward/backward micro-step."""
        return self.batch_size // self.accum_steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return cls(**_known(cls, d, "train"))


def _known(cls, d: dict, where: str) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    return dict(d)


PRESETS: dict[str, dict[str, Any]] = {
    # Small enough for CPU tests: a few hundred steps in a minute or two on one core.
    "tiny": {
        "model": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "fusion_layers": 2, "ffn_mult": 2,
                  "max_frames": 4, "grid": 14, "max_speech": 200, "max_text": 32},
        "batch_size": 32, "lr": 2e-3, "min_lr": 1e-4, "warmup_steps": 20, "workers": 0, "weight_decay": 0.0,
        "shuffle_buffer": 200, "log_every": 10, "ckpt_every": 100,
    },
    # i-Code-like fusion sizes (BERT-base width; i-Code's own encoders are pretrained models of their own).
    "icode": {
        "model": {"d_model": 768, "n_heads": 12, "enc_layers": 6, "fusion_layers": 6, "ffn_mult": 4,
                  "max_frames": 8, "grid": 14, "max_speech": 1500, "max_text": 256},
        # 256 samples per step as 8 micro-batches of 32: a micro-batch of 64 clips of 830 tokens took 37 GiB on
        # an H200 (bench/attention.py), so 256 at once does not fit even its 141 GB; 32 clips of 8 frames
        # (~1,700 tokens) take about as much, and fit 40 and 80 GB cards. Ranks divide it further.
        "batch_size": 256, "accum_steps": 8, "lr": 1e-4, "min_lr": 1e-5, "warmup_steps": 1000, "steps": 100_000,
        "workers": 4,
        "beta2": 0.98, "weight_decay": 0.01, "ckpt_every": 1000, "log_every": 20,
    },
}


def merge_dicts(base: dict, over: dict) -> dict:
    """`over` wins; nested dicts (model) merge key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_config(cli: dict[str, Any], section: dict[str, Any] | None = None) -> TrainConfig:
    """defaults <- preset <- YAML `train:` section <- CLI values (None = not given). The preset is named by
    the CLI (`--preset`) or the section (`preset:`). Values are coerced and checked by mmdata.config's
    build_config (unknown keys, wrong types: ConfigError); `model:` and `data:` nest."""
    from mmdata.config import build_config

    section = _underscored(section or {})
    given = {k: v for k, v in cli.items() if v is not None}
    preset_name = given.pop("preset", None) or section.get("preset")
    section.pop("preset", None)
    if preset_name is not None and preset_name not in PRESETS:
        raise ConfigError(f"train: preset = {preset_name!r} is not allowed; choose one of {sorted(PRESETS)}")
    merged = merge_dicts(merge_dicts(PRESETS.get(preset_name, {}), section), given)
    model = merged.pop("model", None) or {}
    if not isinstance(model, dict):
        raise ConfigError(f"train: model must be a mapping of model sizes, got {model!r}")
    merged["model"] = build_config(ModelConfig, {}, _underscored(model))
    merged["data"] = [build_config(CorpusSpec, {}, _corpus(d)) for d in merged.get("data") or []]
    return build_config(TrainConfig, {}, merged)


def _underscored(d: dict) -> dict:
    return {str(k).replace("-", "_"): v for k, v in d.items()}


def _corpus(d: Any) -> dict:
    """A corpus entry as YAML or CLI gives it: a spec string or {shards, weight}."""
    if isinstance(d, str):
        return {"shards": d}
    if isinstance(d, dict):
        return _underscored(d)
    raise ConfigError(f"train: data entry {d!r} is not allowed; give a shard spec string or {{shards, weight}}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The `train:` section of a YAML file (the same file `mmdata run` reads for all stages)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'train:' section")
    if "train" not in doc:
        raise ConfigError(f"{path}: no 'train:' section (found {sorted(doc)}); put the trainer keys under 'train:'")
    return dict(doc["train"] or {})
