"""Checkpoints: one `torch.save`d dict of tensors and plain types (loadable with weights_only=True).

    {"format": 1, "config": TrainConfig.to_dict(), "step": int, "loss": float,
     "model": state_dict, "optimizer": state_dict, "scheduler": state_dict,
     "data": {"position": [raw samples consumed per stream], "streams": int}}

Files: RUN/checkpoints/step_NNNNNNN.pt, written to a temporary name and renamed, then
RUN/checkpoints/latest.json ({"step", "file"}) is replaced: a checkpoint exists once latest.json names it.
"""
from __future__ import annotations

from pathlib import Path

from mmdata.errors import ConfigError
from mmdata.train.config import TrainConfig
from mmdata.utils import atomic_path, atomic_write_json

# On --resume these come from the new command; everything else (model, optimisation, objectives, seed,
# streams) from the checkpoint, so the run continues the same loss curve.
RUNTIME_KEYS = ("data", "out", "steps", "stop_after", "nproc", "workers", "device", "precision", "log_every",
                "ckpt_every", "keep_ckpts", "max_restarts", "peak_tflops")


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def save_checkpoint(cfg: TrainConfig, step: int, model, opt, sched, position: list[int], loss: float) -> Path:
    import torch

    folder = checkpoint_dir(cfg.out)
    folder.mkdir(parents=True, exist_ok=True)
    state = {"format": 1, "config": cfg.to_dict(), "step": step, "loss": float(loss),
             "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "data": {"position": [int(p) for p in position], "streams": len(position)}}
    path = folder / f"step_{step:07d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    atomic_write_json(folder / "latest.json", {"step": step, "file": path.name})
    for old in sorted(folder.glob("step_*.pt"))[: -cfg.keep_ckpts]:
        old.unlink()
    return path


def latest_checkpoint(out: str | Path) -> Path | None:
    folder = checkpoint_dir(out)
    marker = folder / "latest.json"
    if marker.is_file():
        import json

        path = folder / json.loads(marker.read_text())["file"]
        if path.is_file():
            return path
    found = sorted(folder.glob("step_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint file, or the latest one of a run folder."""
    import torch

    given = path
    if Path(path).is_dir():
        path = latest_checkpoint(path) or latest_checkpoint(Path(path).parent)
    if path is None or not Path(path).is_file():
        raise ConfigError(f"no checkpoint found at {given}; train first or name a checkpoints/step_*.pt file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ConfigError(f"cannot load checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != 1:
        raise ConfigError(f"{path} is not an mmdata training checkpoint (format 1)")
    ckpt["path"] = str(path)
    return ckpt


def resumed_config(cfg: TrainConfig, ckpt: dict) -> TrainConfig:
    base = dict(ckpt["config"])
    new = cfg.to_dict()
    for key in RUNTIME_KEYS:
        if key != "data" or new["data"]:
            base[key] = new[key]
    return TrainConfig.from_dict(base)
