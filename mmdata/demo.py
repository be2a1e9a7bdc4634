"""`make demo`: build a small source collection, serve it on 127.0.0.1, run the whole pipeline through
yt-dlp, train the tiny model, evaluate retrieval on a held-out shard, and say where everything is.

    python -m mmdata.demo --out demo_out [--videos 16] [--steps 300] [--executor local|ray]
    python -m mmdata.demo --out stages --sources-only     # only the sources, as local files (README: Stage by stage)

Run it again and every finished step is skipped (the pipeline resumes; training resumes from its
checkpoint). The sources are served on a fixed port so the manifest, and so the clip keys, stay the same.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import click

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEMO_PORT = 47831


def run_demo_pipeline(out: Path, videos: int, executor: str, port: int = DEMO_PORT):
    from mmdata.pipelines.pipeline import PipelineConfig, render, run_pipeline
    from mmdata.testing.demo_sources import build_sources, write_manifest
    from mmdata.testing.server import MediaServer

    src = out / "sources"
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    if not manifest.exists():
        click.echo(f"building {videos} source videos in {src} (ffmpeg + espeak-ng)...")
        plan = build_sources(src, n_videos=videos)
        write_manifest(manifest, plan, f"http://127.0.0.1:{port}")
    shutil.copy(EXAMPLES / "demo.yaml", out / "pipeline.yaml")
    try:
        server = MediaServer(src, port=port)
    except OSError as e:
        raise click.ClickException(f"port {port} on 127.0.0.1 is taken ({e}); free it or pass --port") from e
    with server:
        cfg = PipelineConfig.from_yaml(out / "pipeline.yaml", {"executor": executor})
        results = run_pipeline(cfg)
    click.echo(render(results))
    return cfg, results


def write_local_sources(out: Path, videos: int) -> Path:
    """The demo's sources in OUT/sources with a manifest of local files beside them (relative paths, which a
    manifest resolves against its own folder): the input of the README's stage-by-stage walkthrough."""
    from mmdata.testing.demo_sources import build_sources, write_manifest

    manifest = out / "sources" / "manifest.csv"
    if not manifest.exists():  # written last: a finished set of sources
        click.echo(f"building {videos} source videos in {manifest.parent} (ffmpeg + espeak-ng)...")
        plan = build_sources(manifest.parent, n_videos=videos)
        write_manifest(manifest, plan, ".")
    return manifest


def train_and_eval(shards: list[Path], run: Path, steps: int) -> dict:
    from mmdata.train.checkpoint import latest_checkpoint
    from mmdata.train.config import load_yaml, resolve_config
    from mmdata.train.evaluate import evaluate, format_table
    from mmdata.train.launch import run as train_run

    train_shards, held_out = shards[:-1], shards[-1]
    spec = [{"shards": str(p), "weight": 1.0} for p in train_shards]
    # batch 16 keeps the demo under 10 minutes on 2 cores; the tiny preset still learns the task
    cfg = resolve_config({"data": spec, "out": str(run), "steps": steps, "batch_size": 16},
                         load_yaml(EXAMPLES / "train_tiny.yaml"))
    resume = latest_checkpoint(run) is not None
    summary = train_run(cfg, resume)
    click.echo(f"trained to step {summary['steps']}: final loss {summary['final_loss']:.3f}, "
               f"{summary['samples_per_s']:.0f} samples/s")
    report = evaluate(run, [str(held_out)], batch_size=64, device="cpu")
    click.echo(format_table(report))
    baseline = evaluate(run, [str(held_out)], batch_size=64, device="cpu", untrained=True)
    click.echo("the same model untrained (the baseline):\n" + format_table(baseline))
    (run / "eval.json").write_text(json.dumps(report, indent=2))
    return report


@click.command(help=__doc__)
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False))
@click.option("--videos", default=16, show_default=True, help="Source videos (3 clips each).")
@click.option("--steps", default=300, show_default=True, help="Training steps of the tiny model.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--port", default=DEMO_PORT, show_default=True, help="Port the sources are served on.")
@click.option("--sources-only", "sources_only", is_flag=True, default=False,
              help="Only build the sources, with OUT/sources/manifest.csv listing them as local files "
                   "(`mmdata download ... --allow-local` reads them), and stop.")
def main(out, videos, steps, executor, port, sources_only):
    t0 = time.perf_counter()
    out = Path(out).resolve()
    if sources_only:
        manifest = write_local_sources(out, videos)
        n = len(manifest.read_text().splitlines()) - 1
        click.echo(f"{n} clips of {videos} videos: {manifest}\nnext: mmdata download {manifest} --work WORK --allow-local")
        return
    cfg, results = run_demo_pipeline(out, videos, executor, port)
    shards = sorted(cfg.out.glob("*.tar"))
    if len(shards) < 2:
        raise click.ClickException(f"the pipeline wrote {len(shards)} shard(s); the demo needs 2+ to hold one out")
    train_and_eval(shards, out / "run", steps)
    click.echo(f"""
done in {time.perf_counter() - t0:.0f} s. What is where:
  {out / 'sources'}     the generated videos and their auto-caption VTT files (served on 127.0.0.1:{port})
  {out / 'manifest.csv'}  one clip per segment: url, start, end, subtitles
  {cfg.work}             the work store: clip table, per-stage chunk packs and tables
  {cfg.work / 'tokenizers'}  the fitted text, speech and vision tokenizers
  {cfg.out}           webdataset shards + index.json + sizes.json (try: mmdata verify {cfg.out})
  {out / 'run'}             checkpoints, log.jsonl, TensorBoard logs, eval.json
Retrieval on the held-out shard {shards[-1].name}: R@1 far above chance means the model links what it sees,
hears and reads. Inspect a sample: mmdata inspect {cfg.out} {shards[0].name} --png sample.png""")
    sys.exit(3 if any(r.failed for r in results) else 0)


if __name__ == "__main__":
    main()
