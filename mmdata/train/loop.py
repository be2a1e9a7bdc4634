"""The training loop. `train(cfg)` reads top to bottom:

    runtime (rank, device, process group) -> vocab from index.json -> model, AdamW, schedule
    -> resume (model, optimiser, scheduler, step, data position) -> DDP -> loader
    -> per step: lr -> micro-batches -> global counts -> forward/backward (no_sync but the last)
       -> clip -> optimiser step -> log -> checkpoint
    -> final checkpoint and summary.json

Outputs in RUN/: checkpoints/step_NNNNNNN.pt (+ latest.json), log.jsonl, tb/ (TensorBoard), config.json,
summary.json. Only rank 0 writes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mmdata.train.checkpoint import latest_checkpoint, load_checkpoint, resumed_config, save_checkpoint
from mmdata.errors import ConfigError
from mmdata.train.config import TrainConfig
from mmdata.train.data import TrainLoader, resolve_vocab
from mmdata.train.losses import PARTS, DistInfo, count_step, objective
from mmdata.train.metrics import peak_flops, step_flops
from mmdata.train.model import PretrainModel
from mmdata.utils import atomic_write_json

log = logging.getLogger("mmdata.train")


@dataclass
class Runtime:
    rank: int
    world: int
    device: torch.device
    bf16: bool

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def dist(self) -> DistInfo:
        return DistInfo(self.rank, self.world)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """auto: this process's GPU when there is one, else the CPU; asking for a GPU that is not there is a
    usage error, not a crash deep inside torch."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: process {local_rank} needs GPU {local_rank}, but this machine has "
                          f"{torch.cuda.device_count() if torch.cuda.is_available() else 0}; use fewer --nproc or --device cpu")
    return torch.device("cuda", local_rank)


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Rank and world from torchrun's environment; gloo on CPU, nccl on GPU."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", 0)))
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)
    return Runtime(rank, world, device, bf16)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then cosine decay to cfg.min_lr at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
    """AdamW with weight decay on matrices only (not biases, norms, temperatures); LambdaLR schedule."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_at(step, cfg) / cfg.lr)
    return opt, sched


class RunLog:
    """JSON lines + TensorBoard on rank 0; a no-op elsewhere. A resumed run first drops what the
    interrupted one logged after its last checkpoint, so each step appears once."""

    def __init__(self, out: Path, enabled: bool, start_step: int):
        self.enabled = enabled
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            path = out / "log.jsonl"
            if start_step and path.exists():
                kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= start_step]
                path.write_text("".join(line + "\n" for line in kept))
            self.jsonl = open(path, "a")
            self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        for k, v in record.items():
            if k != "step" and isinstance(v, (int, float)):
                self.tb.add_scalar(k if "/" in k else f"train/{k}", v, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            self.tb.close()


def train(cfg: TrainConfig, resume: bool | str = False) -> dict:
    rt = setup_runtime(cfg)
    ckpt = load_checkpoint(cfg.out if resume is True else resume) if resume else None
    cfg = resumed_config(cfg, ckpt) if ckpt else resolve_vocab(cfg)
    cfg.streams = cfg.streams or rt.world * max(cfg.workers, 1)  # saved fixed: a resumed run keeps the order
    out = Path(cfg.out)
    if not ckpt and latest_checkpoint(out):
        raise ConfigError(f"{out} already holds checkpoints; add --resume to continue that run or choose another --out")
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", cfg.to_dict())
    torch.manual_seed(cfg.seed)
    model = PretrainModel(cfg.model, cfg.init_temperature).to(rt.device)
    opt, sched = build_optimizer(model, cfg, rt.device)
    step, position = 0, None
    if ckpt:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        step, position = ckpt["step"], ckpt["data"]["position"]
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None,
        find_unused_parameters=True) if rt.world > 1 else model  # a batch may lack a modality
    loader = TrainLoader(cfg, rt.rank, rt.world, position)
    trainer = Trainer(cfg, rt, model, ddp, opt, sched, loader)
    runlog = RunLog(out, rt.main, step)
    last = cfg.steps if not cfg.stop_after else min(cfg.steps, cfg.stop_after)
    t_start, start_step = time.time(), step
    while step < last:
        trainer.step()
        step += 1
        if step % cfg.log_every == 0 or step == last:
            runlog.write(trainer.report(step))
        if step % cfg.ckpt_every == 0 or step == last:
            trainer.save(step)
    runlog.close()
    summary = trainer.summary(step, start_step, time.time() - t_start)
    if rt.main:
        atomic_write_json(out / "summary.json", summary)
    if rt.world > 1:
        torch.distributed.barrier()
    return summary


class Trainer:
    """One optimiser step at a time, plus the bookkeeping between log lines."""

    def __init__(self, cfg, rt, model, ddp, opt, sched, loader):
        self.cfg, self.rt, self.model, self.ddp, self.opt, self.sched, self.loader = (
            cfg, rt, model, ddp, opt, sched, loader)
        self.b_max = max(sum(loader.plan.chunk[s] for s in loader.plan.rank_streams(r)) for r in range(rt.world))
        self.peak = peak_flops(torch.cuda.get_device_name(rt.device), cfg.peak_tflops) if rt.device.type == "cuda" else None
        self._reset_interval()
        self.total_samples, self.total_tokens, self.last_loss = 0, 0.0, float("nan")

    def _reset_interval(self):
        self.acc = torch.zeros(len(PARTS) + 4, dtype=torch.float64)  # parts, total, grad norm, tokens, flops
        self.n_steps, self.t0, self.data_s = 0, time.time(), 0.0

    def step(self) -> None:
        cfg, rt = self.cfg, self.rt
        t = time.time()
        micro = [next(self.loader).to(rt.device) for _ in range(cfg.accum_steps)]
        self.data_s += time.time() - t
        counts = count_step(micro, rt.dist, rt.device)
        for i, batch in enumerate(micro):
            sync = i == len(micro) - 1 or rt.world == 1
            with (contextlib.nullcontext() if sync else self.ddp.no_sync()):
                with torch.autocast(rt.device.type, dtype=torch.bfloat16, enabled=rt.bf16):
                    out = self.ddp(batch)
                    loss, logged = objective(out, batch, counts, i, cfg, self.b_max, rt.dist)
                loss.backward()
            self.acc[: len(PARTS) + 1] += logged.double().cpu()
            self.acc[-2] += batch.n_tokens()
            self.acc[-1] += step_flops(cfg.model, batch) if self.peak else 0.0
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or float("inf"))
        self.acc[-3] += float(grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.n_steps += 1

    def report(self, step: int) -> dict:
        """Interval averages over all ranks: losses, samples/s, tokens/s, MFU on GPU."""
        acc = self.rt.dist.all_reduce(self.acc.to(self.rt.device)).cpu()  # sums over ranks and steps
        n, dt = self.n_steps, max(time.time() - self.t0, 1e-9)
        rec = {"step": step, "lr": lr_at(step - 1, self.cfg)}
        rec.update({name: float(acc[i]) / n for i, name in enumerate(PARTS)})
        rec["loss"] = self.last_loss = float(acc[len(PARTS)]) / n
        rec["grad_norm"] = float(acc[-3]) / (n * self.rt.world)
        samples, tokens = self.cfg.batch_size * n, float(acc[-2])
        rec["samples_per_s"], rec["tokens_per_s"] = samples / dt, tokens / dt
        rec["data_wait"] = self.data_s / dt
        if self.peak:
            rec["mfu"] = float(acc[-1]) / dt / (self.peak * self.rt.world)
        self.total_samples += samples
        self.total_tokens += tokens
        self._reset_interval()
        log.info("step %d loss %.4f lr %.2e %.0f samples/s", step, rec["loss"], rec["lr"], rec["samples_per_s"])
        return rec

    def save(self, step: int) -> None:
        pos = torch.tensor(self.loader.position, dtype=torch.int64, device=self.rt.device)
        if self.rt.world > 1:  # each rank advanced only its own streams
            torch.distributed.all_reduce(pos, op=torch.distributed.ReduceOp.MAX)
        if self.rt.main:
            save_checkpoint(self.cfg, step, self.model, self.opt, self.sched, pos.cpu().tolist(), self.last_loss)

    def summary(self, step: int, start_step: int, wall_s: float) -> dict:
        return {"steps": step, "steps_this_run": step - start_step, "final_loss": self.last_loss,
                "wall_s": round(wall_s, 3), "samples_per_s": self.total_samples / max(wall_s, 1e-9),
                "tokens_per_s": self.total_tokens / max(wall_s, 1e-9), "world_size": self.rt.world,
                "params": self.model.num_params(), "checkpoint": str(latest_checkpoint(self.cfg.out) or ""),
                "device": str(self.rt.device)}
