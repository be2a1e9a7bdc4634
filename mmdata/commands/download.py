"""`mmdata download`: normalise a manifest into the work folder and fetch every source once."""
from __future__ import annotations

from pathlib import Path

import click

from mmdata.commands import common
from mmdata.manifests.table import import_manifest
from mmdata.pipelines.download import DownloadConfig, DownloadStage

HELP = """Download every source of MANIFEST (once per source, however many clips use it) into the work folder,
with subtitles (manual and automatic) and the info JSON, through yt-dlp.

MANIFEST is CSV, TSV, JSONL or Parquet with columns such as url or video_id, start, end, caption, text,
subtitles, kind; or a HowTo100M-style caption JSON; or a WebVid CSV (contentUrl, name); or a CC3M TSV
(caption<TAB>url). Failures become rows in WORK/download/chunk-*.parquet with a reason; the run goes on.
Re-running the same command skips what is done. Exit code: 0 all ok, 3 some items failed, 2 usage error.

Example:

\b
  mmdata download examples/manifest.csv --work work --max-height 360 --concurrency 8
  mmdata download clips.jsonl --work work --executor ray --ray-address auto --retry-failed
"""


@click.command("download", help=HELP)
@click.argument("manifest", type=click.Path(dir_okay=False))
@common.stage_options
@click.option("--chunk-size", type=int, default=None, help="Clips per chunk (unit of work and resume). [256]")
@click.option("--allow-local", is_flag=True, default=None, help="Allow file paths, file:// and private/loopback hosts.")
@click.option("--allow-hosts", "allow_hosts", default=None,
              help="Hosts, addresses or networks (CIDR) to reach though not public, comma-separated "
                   "(an internal media server): see README, Security model.")
@click.option("--max-height", type=int, default=None, help="Highest video height to fetch. [480]")
@click.option("--strict-height", is_flag=True, default=None,
              help="Never a larger format: a source without one at or under --max-height is an error row "
                   "(no_format_under_cap). Default: the smallest larger one then.")
@click.option("--format", "format", default=None, help="Your own yt-dlp format selector (yt-dlp -f).")
@click.option("--format-sort", "format_sort", default=None,
              help="Your own yt-dlp sort order, comma-separated (yt-dlp -S). [res:<max-height>,vcodec:h264]")
@click.option("--container", default=None, help="Container after merging: mp4, mkv, webm. [mp4]")
@click.option("--languages", default=None, help="Subtitle languages, comma-separated. [en]")
@click.option("--no-subtitles", "no_subtitles", is_flag=True, default=False, help="Skip manual subtitles.")
@click.option("--no-auto-subtitles", "no_auto", is_flag=True, default=False, help="Skip automatic captions.")
@click.option("--sections", is_flag=True, default=None, help="Fetch only the span the clips need (long videos).")
@click.option("--concurrency", type=int, default=None, help="Sources fetched at once per worker. [4]")
@click.option("--retries", type=int, default=None, help="Retries (with backoff) for timeouts and 5xx. [2]")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Seconds without data before giving up. [30]")
@click.option("--max-duration", "max_duration_s", type=float, default=None, help="Longest source, seconds. [10800]")
@click.option("--max-filesize-mb", type=float, default=None, help="Largest file, MB. [2000]")
def download_cmd(run_opts: common.RunOptions, manifest: str, chunk_size, no_subtitles, no_auto, **opts):
    if no_subtitles:
        opts["subtitles"] = False
    if no_auto:
        opts["auto_subtitles"] = False
    cfg = common.stage_config(DownloadConfig, run_opts, "download", opts)
    size = chunk_size or common.load_yaml_section(run_opts.config, "manifest").get("chunk_size", 256)
    common.handle_usage_errors(import_manifest, run_opts.work, Path(manifest), int(size))
    common.run_stage_and_exit(DownloadStage(cfg), run_opts)
