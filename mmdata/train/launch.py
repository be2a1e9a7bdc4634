"""`--nproc N`: run `train` in N processes through torch's elastic launcher (what torchrun uses).

One node: the launcher picks a free port (c10d rendezvous on localhost), starts N workers with RANK,
WORLD_SIZE, LOCAL_RANK set, and returns rank 0's summary. gloo on CPU, nccl on GPU (loop.setup_runtime).
With `max_restarts` > 0 a failed worker group is restarted and resumes from the last checkpoint.
Many nodes: start the `mmdata train` command under torchrun yourself; `train` reads torchrun's
environment and does not launch again.
"""
from __future__ import annotations

import logging
import os
import uuid

from mmdata.train.config import TrainConfig


def run(cfg: TrainConfig, resume: bool | str = False) -> dict:
    from mmdata.train.loop import train

    already_distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    if cfg.nproc == 1 or already_distributed:
        return train(cfg, resume)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from mmdata.train.loop import pick_device

    pick_device(cfg.device, cfg.nproc - 1)  # every process will find its GPU (or runs on CPU)

    launch = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=cfg.nproc, run_id=f"mmdata-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=cfg.max_restarts,
                          monitor_interval=0.5, start_method="spawn")
    results = elastic_launch(launch, worker)(cfg.to_dict(), resume)
    return results[0]


def worker(cfg_dict: dict, resume: bool | str) -> dict:
    """Entry point of each launched process (module-level so that spawn can import it)."""
    import torch

    from mmdata.train.checkpoint import latest_checkpoint
    from mmdata.train.loop import train

    cfg = TrainConfig.from_dict(cfg_dict)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(name)s: %(message)s")
    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0 and latest_checkpoint(cfg.out):
        resume = True  # a restarted group continues from the last checkpoint
    if not torch.cuda.is_available() or cfg.device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.nproc))
    try:
        return train(cfg, resume)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
