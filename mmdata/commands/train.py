"""`mmdata train` (pretrain on shards) and `mmdata eval` (cross-modal retrieval on held-out shards)."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from mmdata.commands import common
from mmdata.errors import ConfigError
from mmdata.train.config import PRESETS


@click.command("train", help="Pretrain the fusion model on webdataset shards (masked language/vision/speech "
                             "modeling + contrastive), writing checkpoints, log.jsonl, TensorBoard logs and "
                             "summary.json to --out. Example:\n\n"
                             "  mmdata train --data out --config train.yaml --out run\n\n"
                             "Mix corpora: --data A --data B --weights 3,1. Continue a run: add --resume.")
@click.option("--data", "data", multiple=True,
              help="Shards: a folder `mmdata shard` wrote, a brace range ('o/s-{000000..000009}-000000.tar') or "
                   "a quoted glob ('o/*.tar', also on s3://); repeat to mix corpora.")
@click.option("--weights", "weights", default=None, help="Mixing weights, one per --data, e.g. 3,1 (default: equal).")
@click.option("--config", "config", type=click.Path(dir_okay=False, exists=True), default=None,
              help="YAML file; its `train:` section uses the option names below (`model:` nests the sizes).")
@click.option("--out", "out", default=None, help="Run folder: checkpoints/, log.jsonl, tb/, summary.json.")
@click.option("--preset", "preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="Model and optimiser sizes: tiny (CPU tests) or icode (i-Code-like).")
@click.option("--steps", type=int, default=None, help="Optimiser steps in the schedule.")
@click.option("--stop-after", "stop_after", type=int, default=None,
              help="Stop (with a checkpoint) after this step, keeping the schedule of --steps.")
@click.option("--batch-size", "batch_size", type=int, default=None, help="Global samples per optimiser step.")
@click.option("--accum-steps", "accum_steps", type=int, default=None, help="Gradient accumulation micro-steps.")
@click.option("--lr", type=float, default=None, help="Peak learning rate (after warm-up).")
@click.option("--seed", type=int, default=None, help="Seed of the model init and of the data order.")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes per rank.")
@click.option("--streams", type=int, default=None,
              help="Data streams; fix it to keep the sample order when --nproc or --workers change.")
@click.option("--fusion", type=click.Choice(["merge", "coattn"]), default=None,
              help="Fusion: merge-attention or co-attention.")
@click.option("--nproc", type=int, default=None, help="Processes (GPUs) on this machine; >1 runs DDP.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--log-every", "log_every", type=int, default=None, help="Steps between log lines.")
@click.option("--ckpt-every", "ckpt_every", type=int, default=None, help="Steps between checkpoints.")
@click.option("--resume", is_flag=True, default=False, help="Continue from the latest checkpoint in --out.")
def train_cmd(config, data, weights, fusion, resume, **opts):
    common.require("train", "mmdata train")
    from mmdata.train.launch import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = common.handle_usage_errors(build_train_config, config, data, weights, fusion, opts)
    summary = common.handle_usage_errors(run, cfg, resume)
    click.echo(format_summary(summary))
    sys.exit(0)


def build_train_config(config, data, weights, fusion, opts):
    from mmdata.train.config import load_yaml, resolve_config

    section = load_yaml(config) if config else {}
    cli = dict(opts)
    if data:
        try:
            ws = [float(w) for w in weights.split(",")] if weights else [1.0] * len(data)
        except ValueError as e:
            raise ConfigError(f"--weights {weights!r}: give numbers separated by commas, e.g. 3,1") from e
        if len(ws) != len(data):
            raise ConfigError(f"--weights {weights!r} gives {len(ws)} weights for {len(data)} --data corpora")
        cli["data"] = [{"shards": d, "weight": w} for d, w in zip(data, ws)]
    elif weights:
        raise ConfigError("--weights needs --data (one weight per --data)")
    if fusion:
        cli["model"] = {"fusion": fusion}
    cfg = resolve_config(cli, section)
    if not cfg.data:
        raise ConfigError("no training data: give --data SHARDS or `data:` in the config's train: section")
    if not cfg.out:
        raise ConfigError("no run folder: give --out RUN or `out:` in the config's train: section")
    return cfg


def format_summary(s: dict) -> str:
    return (f"trained {s['steps_this_run']} steps (now at step {s['steps']}) on {s['world_size']} process(es), "
            f"{s['device']}: final loss {s['final_loss']:.4f}, {s['samples_per_s']:.1f} samples/s, "
            f"{s['tokens_per_s']:.0f} tokens/s, {s['wall_s']:.1f} s\ncheckpoint: {s['checkpoint']}")


@click.command("eval", help="Cross-modal retrieval (R@1, R@5 for v->l, l->v, v->s, s->v, l->s, s->l) of a "
                            "checkpoint on held-out shards. Example:\n\n"
                            "  mmdata eval --checkpoint run/checkpoints/step_0001000.pt --data held")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(exists=True),
              help="A checkpoints/step_*.pt file, or a run folder (its latest checkpoint).")
@click.option("--data", "data", multiple=True, required=True,
              help="Held-out shards: a folder, a brace range or a quoted glob ('o/*-000001.tar'); repeat for more.")
@click.option("--batch-size", "batch_size", type=int, default=64, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Also write the report as JSON.")
@click.option("--untrained", is_flag=True, default=False,
              help="Measure the checkpoint's architecture at its seeded initialisation: the baseline.")
def eval_cmd(checkpoint, data, batch_size, device, json_out, untrained):
    common.require("train", "mmdata eval")
    from mmdata.train.evaluate import evaluate, format_table

    report = common.handle_usage_errors(evaluate, checkpoint, list(data), batch_size, device, untrained)
    click.echo(format_table(report))
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n")
    sys.exit(0)
