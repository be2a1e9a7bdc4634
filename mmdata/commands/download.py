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
  mmdata download howto.json --work work --cookies cookies.txt --proxy proxies.txt --sleep-requests 1 --limit-rate 4M
  mmdata download howto.json --work work --prefilter --prefilter-max-duration 1200 --prefilter-min-words-per-30s 20
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
@click.option("--cookies", default=None, type=click.Path(dir_okay=False),
              help="A Netscape cookies.txt for YouTube; read once here and sent to every worker (never written).")
@click.option("--cookies-from-browser", default=None, metavar="BROWSER[+KEYRING][:PROFILE][::CONTAINER]",
              help="Read cookies from a browser profile on this machine (as yt-dlp does); sent to every worker.")
@click.option("--proxy", multiple=True, metavar="URL|FILE",
              help="A proxy (http://, socks5://...), or a file listing one a line; repeat for several. Each "
                   "source always uses the same one (by a hash of its id); each retry the next.")
@click.option("--sleep-requests", "sleep_requests_s", type=float, default=None,
              help="Seconds between yt-dlp's requests while it reads a page (yt-dlp --sleep-requests). [0]")
@click.option("--sleep-interval", "sleep_interval_s", type=float, default=None,
              help="Seconds before each download (yt-dlp --sleep-interval). [0]")
@click.option("--limit-rate", default=None, metavar="RATE",
              help="Bandwidth cap per worker in bytes/s, e.g. 50K or 4.2M, shared by its --concurrency downloads.")
@click.option("--youtube-extractor-args", default=None, metavar="ARGS",
              help="yt-dlp's --extractor-args for YouTube, e.g. 'player_client=default,-tv;po_token=web+XXX'.")
@click.option("--js-runtimes", default=None, metavar="NAME[:PATH],...",
              help="JavaScript runtimes yt-dlp may use for YouTube (deno, node, bun, quickjs). [deno]")
@click.option("--prefilter", is_flag=True, default=None,
              help="Cheap first: judge each page by its info (and captions) before any media, by the rules below; "
                   "a source that fails one is an error row prefilter_<rule>, and no media byte is fetched for it.")
@click.option("--prefilter-min-duration", "prefilter_min_duration_s", type=float, default=None,
              help="Prefilter: shortest source, seconds.")
@click.option("--prefilter-max-duration", "prefilter_max_duration_s", type=float, default=None,
              help="Prefilter: longest source, seconds.")
@click.option("--prefilter-captions", type=click.Choice(["any", "manual", "auto", "none"]), default=None,
              help="Prefilter: captions in a --languages language the page must have (none: no caption rule). [any]")
@click.option("--prefilter-min-words-per-30s", "prefilter_min_words_per_30s", type=float, default=None,
              help="Prefilter: fewest caption words per 30 s (the captions are fetched before the media). [0]")
@click.option("--prefilter-categories", default=None, help="Prefilter: allowed categories, comma-separated.")
@click.option("--prefilter-deny-categories", default=None, help="Prefilter: denied categories, comma-separated.")
@click.option("--prefilter-licenses", default=None,
              help="Prefilter: allowed licences (yt-dlp's `license` text), comma-separated.")
def download_cmd(run_opts: common.RunOptions, manifest: str, chunk_size, no_subtitles, no_auto, **opts):
    opts["proxy"] = opts["proxy"] or None  # not given: the config file's, if any
    if no_subtitles:
        opts["subtitles"] = False
    if no_auto:
        opts["auto_subtitles"] = False
    cfg = common.stage_config(DownloadConfig, run_opts, "download", opts)
    size = chunk_size or common.load_yaml_section(run_opts.config, "manifest").get("chunk_size", 256)
    common.handle_usage_errors(import_manifest, run_opts.work, Path(manifest), int(size))
    common.run_stage_and_exit(DownloadStage(cfg), run_opts)
