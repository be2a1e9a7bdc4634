"""`mmdata tokenizers fit-text|fit-speech|fit-vision|report` and `mmdata quantize`.

Fitting runs in this process (one bounded sample, one k-means); quantizing is a stage run by the runner.
YAML: a `tokenizers:` section with `text:`, `speech:`, `vision:` subsections, and a `quantize:` section,
using the option names (dashes or underscores).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from mmdata.commands import common
from mmdata.config import build_config, load_yaml_section
from mmdata.workdir import WorkDir

GROUP_HELP = """Fit the discrete tokenizers on the corpus itself and report their quality.

A tokenizer set is a folder (default WORK/tokenizers) with text/, speech/ and vision/ subfolders, each
holding a config, its arrays and a content hash; `mmdata quantize` and the shards read it.

Example:

\b
  mmdata tokenizers fit-text --work work --vocab-size 8000
  mmdata tokenizers fit-speech --work work --k 100
  mmdata tokenizers fit-vision --work work --k 1024
  mmdata tokenizers report --work work
"""


@click.group("tokenizers", help=GROUP_HELP)
def tokenizers_group():
    pass


def fit_options(f):
    """--work, --config, --tokenizers (the set folder written into), --force -> `work`, `config`, `out`, `force`."""

    @click.option("--work", "work", required=True, type=common.Location(),
                  help="Work folder whose clips (audio, frames, align outputs) the tokenizer is fitted on.")
    @click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                  help="YAML config; its tokenizers.text/speech/vision section uses the option names.")
    @click.option("--tokenizers", "out", type=common.Location(), default=None,
                  help="Tokenizer set folder (or URL) to write into. [WORK/tokenizers]")
    @click.option("--force", "force", is_flag=True, default=False,
                  help="Fit again a tokenizer the set holds that was fitted with other options (refused without).")
    @functools.wraps(f)
    def wrapper(work, config, out, force, **kwargs):
        work = WorkDir(work)
        return f(work, config, out or work.store.join("tokenizers"), force, **kwargs)

    return wrapper


def _section(config: str | None, name: str) -> dict:
    return (load_yaml_section(config, "tokenizers") or {}).get(name) or {}


def _fit_and_echo(kind: str, fit_fn, cls, work: WorkDir, config, out: str | Path, force: bool, opts: dict) -> None:
    from mmdata.store.fs import writable_dir
    from mmdata.tokenizers.refit import check, fit_options

    def go():
        cfg = build_config(cls, opts, _section(config, kind))
        check(out, kind, fit_options(cfg, 0), force, work.store.options)  # the commands fit on every chunk
        with writable_dir(out, work.store.options) as local:  # fitted here, uploaded when `out` is a URL
            return fit_fn(work, local, cfg)

    saved = common.handle_usage_errors(go)
    fit = saved.get("fit") or {}
    click.echo(f"{kind} tokenizer: vocab {saved['vocab_size']}, hash {saved['hash'][:16]} -> {out}/{kind}")
    if fit:
        usage = fit.get("usage") or {}
        sample = ", ".join(f"{k} {fit[k]}" for k in ("n_texts", "n_clips", "n_frames", "n_patches") if k in fit)
        click.echo(f"  fitted on {sample}; skipped {fit.get('skipped') or 'none'}; "
                   f"codes used {usage.get('used')}/{saved['vocab_size']}, perplexity {usage.get('perplexity')}")


@tokenizers_group.command("fit-text", help="Train a byte-level BPE on the clips' transcripts (align text, "
                          "else manifest text, else caption), or take an existing tokenizer.json.\n\nExample:\n\n"
                          "  mmdata tokenizers fit-text --work work --vocab-size 8000\n\n"
                          "  mmdata tokenizers fit-text --work work --from tokenizer.json")
@fit_options
@click.option("--vocab-size", "vocab_size", type=int, default=None, help="Vocabulary size (>= 261). [8000]")
@click.option("--min-frequency", "min_frequency", type=int, default=None, help="Least count of a merged pair. [2]")
@click.option("--from", "from_file", type=click.Path(dir_okay=False), default=None,
              help="An existing HF tokenizer.json to use as is instead of training.")
def fit_text_cmd(work, config, out, force, **opts):
    common.require("tokenizers", "mmdata tokenizers fit-text")
    from mmdata.tokenizers.fit import fit_text
    from mmdata.tokenizers.text import TextFitConfig

    _fit_and_echo("text", fit_text, TextFitConfig, work, config, out, force, opts)


@tokenizers_group.command("fit-speech", help="Speech units: 16 kHz audio -> 39-d Kaldi MFCC (or a HuBERT/WavLM/"
                          "wav2vec2 layer) at 50 Hz -> mean/variance normalised -> k-means.\n\nExample:\n\n"
                          "  mmdata tokenizers fit-speech --work work --k 500 --max-frames 300000\n\n"
                          "  mmdata tokenizers fit-speech --work work --encoder hubert_base --layer 6\n\n"
                          "  mmdata tokenizers fit-speech --work work --encoder hubert --checkpoint h.pt --layer 6")
@fit_options
@click.option("--k", "k", type=int, default=None, help="Number of units (2..65536). [100]")
@click.option("--max-frames", "max_frames", type=int, default=None, help="Frames in the fitting sample. [200000]")
@click.option("--max-clips", "max_clips", type=int, default=None, help="Clips sampled, 0 = all. [0]")
@click.option("--iters", type=int, default=None, help="k-means iterations. [20]")
@click.option("--seed", type=int, default=None, help="Seed of the sample and the k-means init. [0]")
@click.option("--encoder", "--speech-encoder", "encoder", default=None,
              help="Frame features: mfcc; a pretrained model by name (hubert_base, wavlm_base_plus, ... any "
                   "torchaudio.pipelines bundle: weights from torch hub's cache, downloaded when missing); or "
                   "hubert|wavlm|wav2vec2 with --checkpoint. [mfcc]")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Local weights file: for hubert|wavlm|wav2vec2, or in place of a named model's download.")
@click.option("--layer", type=int, default=None, help="Transformer layer (1-based) of the encoder. [6]")
@click.option("--window-seconds", "window_s", type=float, default=None,
              help="Encoder models see clips in windows this long (bounded memory for long clips). [30]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="[auto]")
def fit_speech_cmd(work, config, out, force, **opts):
    common.require("tokenizers", "mmdata tokenizers fit-speech")
    from mmdata.tokenizers.fit import fit_speech
    from mmdata.tokenizers.speech import SpeechFitConfig

    _fit_and_echo("speech", fit_speech, SpeechFitConfig, work, config, out, force, opts)


@tokenizers_group.command("fit-vision", help="Vision tokens: frames -> 224x224 -> 14x14 patches of 16x16 -> "
                          "patch features (pooled pixels, colour statistics, gradient histograms; or a ViT) -> "
                          "PCA-whitened -> k-means.\n\nExample:\n\n"
                          "  mmdata tokenizers fit-vision --work work --k 1024 --max-patches 200000\n\n"
                          "  mmdata tokenizers fit-vision --work work --encoder vit_b_16")
@fit_options
@click.option("--k", "k", type=int, default=None, help="Number of tokens (2..65536). [1024]")
@click.option("--max-patches", "max_patches", type=int, default=None, help="Patches in the fitting sample. [200000]")
@click.option("--max-frames-per-clip", "max_frames_per_clip", type=int, default=None,
              help="Frames read per clip (evenly spaced). [8]")
@click.option("--max-clips", "max_clips", type=int, default=None, help="Clips sampled, 0 = all. [0]")
@click.option("--iters", type=int, default=None, help="k-means iterations. [10]")
@click.option("--pca-dim", "pca_dim", type=int, default=None, help="Whitened feature dimensions. [64]")
@click.option("--seed", type=int, default=None, help="Seed of the sample and the k-means init. [0]")
@click.option("--encoder", "--vision-encoder", "encoder", default=None,
              help="Patch features: patch; a torchvision ViT by name (vit_b_16, vit_l_16: its default weights "
                   "from torch hub's cache, downloaded when missing); or vit with --checkpoint. [patch]")
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Local weights file: for --encoder vit, or in place of a named model's download.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="[auto]")
def fit_vision_cmd(work, config, out, force, **opts):
    common.require("tokenizers", "mmdata tokenizers fit-vision")
    from mmdata.tokenizers.fit import fit_vision
    from mmdata.tokenizers.vision import VisionFitConfig

    _fit_and_echo("vision", fit_vision, VisionFitConfig, work, config, out, force, opts)


@tokenizers_group.command("report", help="Quality of a tokenizer set: codebook usage, dead codes, unigram "
                          "perplexity; with --work, measured on a sample of its clips, and for speech, purity "
                          "and PNMI against word labels where clips have word timings.\n\nExample:\n\n"
                          "  mmdata tokenizers report --work work\n\n"
                          "  mmdata tokenizers report --tokenizers work/tokenizers --json")
@click.option("--work", "work", type=common.Location(), default=None,
              help="Measure on this work store's clips (otherwise: the statistics of the fitting sample).")
@click.option("--tokenizers", "tokdir", type=common.Location(), default=None,
              help="Tokenizer set folder or URL. [WORK/tokenizers]")
@click.option("--max-clips", "max_clips", type=int, default=200, show_default=True, help="Clips measured, 0 = all.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the clip sample.")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the report as JSON.")
def report_cmd(work, tokdir, max_clips, seed, as_json):
    common.require("tokenizers", "mmdata tokenizers report")
    from mmdata.tokenizers.report import render, report_tokenizers

    if not tokdir and not work:
        raise click.UsageError("give --tokenizers DIR or --work DIR")
    from mmdata.store.fs import local_copy

    tokdir = common.handle_usage_errors(local_copy, tokdir or WorkDir(work).store.join("tokenizers"))
    report = common.handle_usage_errors(report_tokenizers, tokdir, WorkDir(work) if work else None, max_clips, seed)
    click.echo(json.dumps(report, indent=2, sort_keys=True) if as_json else render(report))


@click.command("quantize", help="Turn every clip's frames, audio and transcript into tokens with a fitted "
               "tokenizer set: vtok uint16 [T,14,14], stok uint16 [L] at 50 Hz, ttok int32 [N]. Workers load "
               "the tokenizers once and use a GPU when the cluster has one.\n\nExample:\n\n"
               "  mmdata quantize --work work\n\n"
               "  mmdata quantize --work work --tokenizers tok --executor ray")
@common.stage_options
@click.option("--tokenizers", "tokenizers", type=common.Location(), default=None,
              help="Tokenizer set folder or URL. [WORK/tokenizers]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="auto: a GPU when the worker has one; cpu: never ask for one. [auto]")
@click.option("--memory-mb", "memory_mb", type=int, default=None, help="Memory per worker; sizes batches. [2048]")
@click.option("--batch-clips", "batch_clips", type=int, default=None,
              help="Clips encoded together on the device. [32]")
@click.option("--load-threads", "load_threads", type=int, default=None,
              help="Threads per worker reading the next batch's inputs while one encodes. [4]")
def quantize_cmd(run_opts: common.RunOptions, **opts):
    from mmdata.pipelines.quantize import QuantizeConfig, QuantizeStage
    from mmdata.tokenizers import load_tokenizer_set

    preset = {"tokenizers": run_opts.work.store.join("tokenizers")}
    cfg = common.stage_config(QuantizeConfig, run_opts, "quantize", opts, preset=preset)
    common.handle_usage_errors(load_tokenizer_set, cfg.tokenizers)  # a missing set is a usage error, up front
    common.run_stage_and_exit(QuantizeStage(cfg), run_opts)


COMMANDS = (tokenizers_group, quantize_cmd)  # what mmdata/cli.py registers
