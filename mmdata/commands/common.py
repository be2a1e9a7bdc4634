"""Options and the run-and-report step shared by every stage command. Commands stay thin: parse options,
build typed configs, call one library function."""
from __future__ import annotations

import functools
import logging
import sys

import click

from mmdata.config import build_config, load_yaml_section
from mmdata.errors import ConfigError, ManifestError, MissingDependencyError, RunStopped
from mmdata.pipelines.runner import EXECUTORS, RunnerConfig, Summary, run_stage
from mmdata.workdir import WorkDir

EXIT_OK, EXIT_STOPPED, EXIT_USAGE, EXIT_ITEMS_FAILED = 0, 1, 2, 3


class Location(click.ParamType):
    """A local folder (checked to exist when `exists`) or an fsspec URL (s3://bucket/path), as given."""

    name = "PATH|URL"

    def __init__(self, exists: bool = False):
        self.exists = exists

    def convert(self, value, param, ctx):
        from pathlib import Path

        from mmdata.store.fs import is_url

        value = str(value)
        if not is_url(value) and self.exists and not Path(value).is_dir():
            self.fail(f"folder {value!r} does not exist", param, ctx)
        return value


class RunOptions:
    """What every stage command shares: the work folder, the config file, and how to run."""

    def __init__(self, work: str, config: str | None, runner: RunnerConfig):
        self.work = WorkDir(work)
        self.config = config
        self.runner = runner


def stage_options(f):
    """--work, --config, --executor, --ray-address, --workers, --gpus-per-worker, --retry-failed, --no-progress
    -> `run_opts`."""

    @click.option("--work", "work", required=True, type=Location(),
                  help="Work store: a folder or an fsspec URL (s3://bucket/path): clip table, packed stage outputs, status.")
    @click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                  help="YAML config; its section for this command uses the same names as the options.")
    @click.option("--executor", type=click.Choice(EXECUTORS), default=None,
                  help="local: worker processes on this machine (default). ray: Ray actors (embedded local Ray or "
                       "--ray-address).")
    @click.option("--ray-address", default=None, help="Address of a running Ray cluster, e.g. 10.0.0.1:6379 or auto.")
    @click.option("--workers", type=int, default=None,
                  help="Local: worker processes (default: one per core; 1 runs in this process). Ray: actors per "
                       "stage (default: as many as the cluster can schedule).")
    @click.option("--gpus-per-worker", "gpus_per_worker", type=float, default=None,
                  help="GPUs each worker of a GPU stage asks Ray for: 1, 2, or a fraction (0.5: two per GPU). [1]")
    @click.option("--retry-failed", is_flag=True, default=None, help="Re-run only the items that failed before.")
    @click.option("--force", is_flag=True, default=None,
                  help="Redo the chunks made with other options (and those of the stages that read them) instead of "
                       "stopping; see README \"Resume rules\".")
    @click.option("--no-progress", "no_progress", is_flag=True, default=False, help="Hide the progress bar.")
    @functools.wraps(f)
    def wrapper(work, config, executor, ray_address, workers, gpus_per_worker, retry_failed, force, no_progress,
                **kwargs):
        def build():
            cli = dict(executor=executor, ray_address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker,
                       retry_failed=retry_failed, force=force)
            if ray_address and not executor:
                cli["executor"] = "ray"
            cfg = build_config(RunnerConfig, cli, load_yaml_section(config, "runner"))
            cfg.progress = not no_progress
            return RunOptions(work, config, cfg)

        run_opts = handle_usage_errors(build)
        return f(run_opts, **kwargs)

    return wrapper


def handle_usage_errors(fn, *args, **kwargs):
    """Run fn; a config/manifest/dependency error is a usage error: message on stderr, exit 2. A run stopped
    midway (RunStopped: its cluster lost its nodes) says why and how to resume: exit 1."""
    try:
        return fn(*args, **kwargs)
    except (ConfigError, ManifestError, MissingDependencyError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_USAGE)
    except RunStopped as e:
        click.echo(f"error: the run stopped: {e}", err=True)
        sys.exit(EXIT_STOPPED)


def require(step: str, who: str) -> None:
    """Stop with one line (exit 2) when a library or tool `step` needs is broken or missing, before any
    import of it can raise a traceback."""
    from mmdata.environment import STEP_NEEDS, check_needs

    handle_usage_errors(check_needs, STEP_NEEDS[step], who)


def stage_config(cls, run_opts: RunOptions, section: str, cli: dict, preset: dict | None = None):
    return handle_usage_errors(
        lambda: build_config(cls, cli, load_yaml_section(run_opts.config, section), preset=preset))


def run_stage_and_exit(stage, run_opts: RunOptions) -> Summary:
    """Run the stage, print the summary, exit 0 (all ok) or 3 (some items failed)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summary = handle_usage_errors(run_stage, stage, run_opts.work, run_opts.runner)
    click.echo(summary.render())
    sys.exit(summary.exit_code)
