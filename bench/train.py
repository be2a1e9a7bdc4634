"""Benchmark: the training data loader alone vs the training step alone, in one run.

The loader (shards -> streams -> decode, crop, mask -> padded batches) must deliver at least 3x the samples
per second that the step (forward, backward, clip, AdamW) consumes, or the accelerator would wait on data.
The shards are synthetic token shards (mmdata.testing.synthetic) with pipeline-like sizes: 4 frames of
14x14 vision tokens (784 per clip), about 40 speech units (0.8 s at 50 Hz), a 3-4 token caption. Each side runs `--repeat` times,
interleaved, and the best counts (the machine is shared). Prints samples/s of both and the ratio.

    .venv/bin/python bench/train.py                        # CPU, 1 torch thread, loader in-process
    .venv/bin/python bench/train.py --workers 2 --batch-size 64 --threads 2
    python3 bench/train.py --device cuda --preset icode --batch-size 64 --workers 8   # on a GPU machine

On CUDA the step also reports its model FLOP utilisation (mmdata.train.metrics: the model's FLOPs per step
over the device's peak bf16 rate).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from mmdata.testing.synthetic import SynthSpec, write_shards  # noqa: E402
from mmdata.train.config import resolve_config  # noqa: E402
from mmdata.train.data import TrainLoader, resolve_vocab  # noqa: E402
from mmdata.train.loop import Trainer, build_optimizer, setup_runtime  # noqa: E402
from mmdata.train.metrics import peak_flops, step_flops  # noqa: E402
from mmdata.train.model import PretrainModel  # noqa: E402


class Replay:
    """Stands in for TrainLoader in the step benchmark: the same batches again, no loading cost."""

    def __init__(self, loader: TrainLoader, n: int):
        self.plan, self.position = loader.plan, loader.position
        self.batches = itertools.cycle([next(loader) for _ in range(n)])

    def __next__(self):
        return next(self.batches)


def time_loader(cfg, n_batches: int) -> tuple[float, float]:
    loader = TrainLoader(cfg)
    next(loader)  # start-up (worker processes, first shards, shuffle buffer) is not throughput
    t0, tokens = time.perf_counter(), 0
    for _ in range(n_batches):
        tokens += next(loader).n_tokens()
    dt = time.perf_counter() - t0
    return n_batches * cfg.batch_size / dt, tokens / dt


def time_step(cfg, n_steps: int) -> tuple[float, float, float | None]:
    rt = setup_runtime(cfg)
    torch.manual_seed(0)
    model = PretrainModel(cfg.model).to(rt.device)
    opt, sched = build_optimizer(model, cfg, rt.device)
    replay = Replay(TrainLoader(cfg), 4)
    trainer = Trainer(cfg, rt, model, model, opt, sched, replay)
    trainer.step()  # warm-up
    batches = [next(replay) for _ in range(4)]
    tokens = sum(b.n_tokens() for b in batches) / 4 * n_steps
    flops = sum(float(step_flops(cfg.model, b)) for b in batches) / 4 * n_steps
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n_steps):
        trainer.step()
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = peak_flops(torch.cuda.get_device_name(rt.device), cfg.peak_tflops) if rt.device.type == "cuda" else None
    return n_steps * cfg.batch_size / dt, tokens / dt, (flops / dt / peak if peak else None)


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers (0 = in the training process)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the step")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default="tiny", help="model preset (tiny, icode)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="mmdata-bench-train-") as d:
        spec = write_shards(Path(d), 1024, shard_size=256, spec=SynthSpec(frames=4, grid=14))
        cfg = resolve_vocab(resolve_config({"preset": args.preset, "data": [spec], "out": str(Path(d) / "run"),
                                            "batch_size": args.batch_size, "workers": args.workers,
                                            "device": args.device}))
        best_load, best_step = (0.0, 0.0), (0.0, 0.0, None)
        for _ in range(args.repeat):
            best_load = max(best_load, time_loader(cfg, args.batches), key=lambda r: r[0])
            best_step = max(best_step, time_step(cfg, args.batches), key=lambda r: r[0])
    ratio = best_load[0] / best_step[0]
    print(f"{args.preset} model, batch {args.batch_size}, {args.workers} loader workers, {args.threads} torch thread(s), "
          f"{args.device}")
    print(f"loader alone: {best_load[0]:8.1f} samples/s  {best_load[1]:10.0f} tokens/s")
    mfu = f"  MFU {best_step[2]:.1%}" if best_step[2] is not None else ""
    print(f"step alone:   {best_step[0]:8.1f} samples/s  {best_step[1]:10.0f} tokens/s{mfu}")
    print(f"ratio loader/step = {ratio:.2f} (target >= 3)")
    return ratio


if __name__ == "__main__":
    main()
