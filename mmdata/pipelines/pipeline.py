"""`mmdata run pipeline.yaml`: the whole pipeline, streamed chunk by chunk (stream.py), each (stage, chunk)
through the same runner as the stage commands.

The YAML holds top-level `manifest`, `work`, `out` (paths relative to the YAML file), optionally `stages`
(a subset, in order) and `preset`, plus one section per stage with the same names as that command's
options. Because each stage resumes on its own (finished chunks and items are skipped, tokenizers that
exist are kept, only chunks whose inputs changed are sharded again), running the pipeline again after an
interruption gives the same corpus as an uninterrupted run. Every section is checked when the file is read,
before any work; a re-run with a section edited in a way that changes outputs stops before any work,
naming what changed, unless `runner.force` (`--force`) says to redo (stamps.py). The tokenizers are fitted on the first
`tokenizers.fit_chunks` chunks (default 4), whatever order the chunks finish in. Each chunk is sharded as
soon as its quantize is done; index.json is merged from the chunks' records at the end.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

from mmdata.config import build_config, check, load_yaml
from mmdata.errors import ConfigError
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.pipelines.stamps import refuse
from mmdata.store.fs import Store, is_url, writable_dir
from mmdata.workdir import WorkDir

STAGES = ("download", "shots", "vad", "frames", "audio", "align", "filter", "dedup", "tokenizers", "quantize",
          "shard")
SECTIONS = {"filter": "filters"}  # a stage whose YAML section has another name than the stage
OPTIONAL = ("shots", "vad", "filter", "dedup")  # in the default stages only when the YAML has its section
PARTS = {"dedup": ("signatures", "dedup")}  # a step made of two runner stages (the signatures on workers)
DEFAULT_STAGES = tuple(s for s in STAGES if s not in OPTIONAL)
TOP_KEYS = {"manifest", "work", "out", "stages", "preset", "chunk_size", "runner", "storage",
            *(SECTIONS.get(s, s) for s in STAGES)}


@dataclass
class PipelineConfig:
    manifest: Path
    work: Path | str  # a folder or an fsspec URL
    out: Path | str
    stages: tuple[str, ...] = STAGES
    preset: str | None = None  # media recipe (icode, avbert)
    chunk_size: int = 256
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    base: Path = Path(".")  # the YAML file's folder: relative paths in it are relative to this
    storage: dict[str, Any] = field(default_factory=dict)  # fsspec storage options (endpoint, profile, ...)

    @classmethod
    def from_yaml(cls, path: str | Path, runner_cli: dict[str, Any] | None = None) -> "PipelineConfig":
        path = Path(path)
        data = load_yaml(path)
        unknown = sorted(set(data) - TOP_KEYS)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(TOP_KEYS)}")
        for key in ("manifest", "work", "out"):
            if not data.get(key):
                raise ConfigError(f"{path}: '{key}' is required (a path, relative to the YAML file)")
        base = path.parent
        stages = tuple(data.get("stages") or (s for s in STAGES if s in DEFAULT_STAGES or SECTIONS.get(s, s) in data))
        bad = [s for s in stages if s not in STAGES]
        check(not bad, "pipeline", "stages", list(stages), f"names from {STAGES}")
        for s in STAGES + ("runner",):
            key = SECTIONS.get(s, s)
            check(isinstance(data.get(key) or {}, dict), "pipeline", key, data.get(key),
                  "a mapping of that step's options")
        sections = {s: dict(data.get(SECTIONS.get(s, s)) or {}) for s in STAGES}
        runner = build_config(RunnerConfig, runner_cli or {}, data.get("runner") or {})
        storage = data.get("storage") or {}
        check(isinstance(storage, dict), "pipeline", "storage", storage, "a mapping of fsspec storage options")
        cfg = cls(manifest=base / data["manifest"], work=_place(base, data["work"]), out=_place(base, data["out"]),
                  stages=stages, preset=data.get("preset"), chunk_size=int(data.get("chunk_size", 256)),
                  sections=sections, runner=runner, base=base, storage=storage)
        cfg.check_sections(path)
        return cfg

    def check_sections(self, where: Path | str) -> None:
        """Build every step's config from its section now (each section, whether or not `stages` runs it): an
        unknown key, a wrong type or a bad value stops the run before any download, not hours into it."""
        for name in STAGES:
            try:
                SECTION_CHECKS[name](self)
            except ConfigError as e:
                raise ConfigError(f"{where}: section {SECTIONS.get(name, name)!r}: {e}") from e


@dataclass
class StepResult:
    stage: str
    ok: int
    failed: int
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)
    note: str = ""


def _download_config(cfg: PipelineConfig):
    from mmdata.pipelines.download import DownloadConfig

    return build_config(DownloadConfig, {}, cfg.sections["download"])


def _download(cfg: PipelineConfig, work: WorkDir):
    from mmdata.manifests.table import import_manifest
    from mmdata.pipelines.download import DownloadStage

    import_manifest(work, cfg.manifest, cfg.chunk_size)
    return DownloadStage(_download_config(cfg))


def _media_config(cfg: PipelineConfig, stage_name: str):
    from mmdata.media.config import build_media_config

    return build_media_config(stage_name, cfg.sections[stage_name], {}, cfg.preset)


def _media(stage_name: str):
    def make(cfg: PipelineConfig, work: WorkDir):
        from mmdata.pipelines.audio import AudioStage
        from mmdata.pipelines.frames import FramesStage

        stage_cls = {"frames": FramesStage, "audio": AudioStage}[stage_name]
        return stage_cls(_media_config(cfg, stage_name))

    return make


def _align_config(cfg: PipelineConfig):
    from mmdata.pipelines.align import AlignConfig

    return build_config(AlignConfig, {}, cfg.sections["align"])


def _align(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.align import AlignStage

    return AlignStage(_align_config(cfg))


def _shots_config(cfg: PipelineConfig):
    from mmdata.media.shots import ShotsConfig

    return build_config(ShotsConfig, {}, cfg.sections["shots"])


def _shots(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.shots import ShotsStage

    return ShotsStage(_shots_config(cfg))


def _vad_config(cfg: PipelineConfig):
    from mmdata.pipelines.vad import VadConfig

    return build_config(VadConfig, {}, cfg.sections["vad"])


def _vad(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.vad import VadStage

    return VadStage(_vad_config(cfg))


def _filter_config(cfg: PipelineConfig):
    from mmdata.filters.rules import FilterConfig

    return build_config(FilterConfig, {}, cfg.sections["filter"])


def _filter(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.filters import FilterStage

    return FilterStage(_filter_config(cfg))


def _dedup_config(cfg: PipelineConfig):
    from mmdata.dedup.index import DedupConfig

    return build_config(DedupConfig, {}, cfg.sections["dedup"])


def _signatures(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.dedup import SignaturesStage

    return SignaturesStage(_dedup_config(cfg))


def _dedup(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.dedup import DedupStage

    return DedupStage(_dedup_config(cfg))


def tokenizer_dir(cfg: PipelineConfig, work: WorkDir) -> Path | str:
    """The tokenizer set: `tokenizers.dir` (a path relative to the YAML file, or a URL), else WORK/tokenizers."""
    given = cfg.sections["tokenizers"].get("dir")
    return _place(cfg.base, given) if given else work.store.join("tokenizers")


def _place(base: Path, value: str | Path) -> Path | str:
    """A YAML path: relative to the YAML file's folder, unless it is a URL (s3://...)."""
    return str(value) if is_url(value) else base / value


def _has_input(work: WorkDir, kind: str, clips: list) -> bool:
    """Whether any clip has what this tokenizer is fitted on: an image-caption corpus has no audio, a
    speech-transcript corpus no frames, and neither needs that tokenizer."""
    from mmdata.tokenizers.fit import audio_input, clip_text, frames_input

    find = {"text": lambda c: clip_text(work, c), "speech": lambda c: audio_input(work, c.key),
            "vision": lambda c: frames_input(work, c.key)}[kind]
    return any(find(c) for c in clips)


FIT_CHUNKS = 4  # default tokenizers.fit_chunks: 1,024 clips at the default chunk size
TOKENIZER_KEYS = ("dir", "fit_chunks", "text", "speech", "vision")


def _fit_configs(cfg: PipelineConfig) -> dict[str, Any]:
    """The `tokenizers:` section: `dir`, `fit_chunks`, and each kind's fit config (checked with the others)."""
    from mmdata.tokenizers.speech import SpeechFitConfig
    from mmdata.tokenizers.text import TextFitConfig
    from mmdata.tokenizers.vision import VisionFitConfig

    section = cfg.sections["tokenizers"]
    unknown = sorted(set(section) - set(TOKENIZER_KEYS))
    if unknown:
        raise ConfigError(f"unknown tokenizers option(s) {unknown}; allowed: {list(TOKENIZER_KEYS)}")
    fit_sample(cfg, [])  # fit_chunks
    out = {}
    for kind, cls in (("text", TextFitConfig), ("speech", SpeechFitConfig), ("vision", VisionFitConfig)):
        check(isinstance(section.get(kind) or {}, dict), "tokenizers", kind, section.get(kind), "a mapping of options")
        out[kind] = build_config(cls, {}, section.get(kind) or {})
    return out


@dataclass
class _FitChunks:
    fit_chunks: int = FIT_CHUNKS


def fit_chunks(cfg: PipelineConfig) -> int:
    n = build_config(_FitChunks, {}, {"fit_chunks": cfg.sections["tokenizers"].get("fit_chunks", FIT_CHUNKS)}).fit_chunks
    check(n >= 0, "tokenizers", "fit_chunks", n, "0 (all chunks) or a positive count")
    return n


def fit_sample(cfg: PipelineConfig, chunks: list[int]) -> list[int]:
    """The chunks the tokenizers are fitted on: the first `fit_chunks` by number, so the sample is the same
    whatever order chunks finish in (0: all chunks)."""
    n = fit_chunks(cfg)
    return sorted(chunks)[:n] if n else sorted(chunks)


def _own_tokenizers(cfg: PipelineConfig) -> bool:
    """Whether the run fits its own tokenizer set, WORK/tokenizers: one named by `tokenizers.dir` is the user's,
    used as it is (only the kinds it lacks are fitted into it), never refused, refitted or an input."""
    return "tokenizers" in cfg.stages and not cfg.sections["tokenizers"].get("dir")


def _review_tokenizers(cfg: PipelineConfig, work: WorkDir) -> list[str]:
    """Refusals for tokenizers of the run's own set, WORK/tokenizers, fitted with other options than the
    YAML's; with --force they go now, before the plan, to be fitted again (tokenizers/refit.py). A set named
    by `dir:` is the user's, used as it is (only what it lacks is fitted)."""
    from mmdata.tokenizers.refit import fit_options, review_set

    if not _own_tokenizers(cfg):
        return []
    wants = {kind: fit_options(fc, fit_chunks(cfg)) for kind, fc in _fit_configs(cfg).items()}
    refusals, refits = review_set(tokenizer_dir(cfg, work), wants, cfg.runner.force, work.store.options)
    for line in refits:
        click.echo(line)
    return refusals


def _tokenizers(cfg: PipelineConfig, work: WorkDir, chunks: list[int] | None = None) -> StepResult:
    """Fit each tokenizer the set folder lacks and the sample (`chunks`; default all) has input for (a given,
    complete set is used as is)."""
    work = work.fresh()  # the fit's own view: the items it unpacks go when it ends
    try:
        return _fit_tokenizers(cfg, work, chunks)
    finally:
        work.close()


def _fit_tokenizers(cfg: PipelineConfig, work: WorkDir, chunks: list[int] | None) -> StepResult:
    from mmdata.tokenizers.fit import fit_inputs, fit_speech, fit_text, fit_vision
    from mmdata.tokenizers.refit import inputs_changed

    t0 = time.perf_counter()
    where = tokenizer_dir(cfg, work)
    stored = Store(where, work.store.options)
    configs = _fit_configs(cfg)
    sample = None if chunks is None else set(chunks)
    clips = [c for c in work.clips() if sample is None or c.chunk in sample]
    fitted, kept, no_input = [], [], []
    for kind, fit in (("text", fit_text), ("speech", fit_speech), ("vision", fit_vision)):
        again = False
        if stored.exists(f"{kind}/config.json"):
            again = _own_tokenizers(cfg) and inputs_changed(where, kind, fit_inputs(work, kind, clips),
                                                             work.store.options)
            if not again:
                kept.append(kind)
                continue
        if not _has_input(work, kind, clips):
            no_input.append(kind)
            continue
        with writable_dir(where, work.store.options) as out:  # fitted here, uploaded when `where` is a URL
            saved = fit(work, out, configs[kind], clips, fit_chunks(cfg))
        fitted.append(f"{kind} (vocab {saved['vocab_size']}" + (", again: its sample's inputs changed since it was "
                                                                 "fitted)" if again else ")"))
    note = (f"tokenizers in {where}: fitted {', '.join(fitted) or 'none'} on {len(clips)} clips of "
            f"{len(set(c.chunk for c in clips))} chunk(s); kept {', '.join(kept) or 'none'}")
    if no_input:
        note += f"; none for {', '.join(no_input)} (no clip has that modality)"
    click.echo(note)
    return StepResult("tokenizers", len(fitted) + len(kept), 0, time.perf_counter() - t0, note=note)


def _quantize_config(cfg: PipelineConfig, tokenizers: str):
    from mmdata.pipelines.quantize import QuantizeConfig

    return build_config(QuantizeConfig, {}, cfg.sections["quantize"], preset={"tokenizers": tokenizers})


def _shard_config(cfg: PipelineConfig, tokenizers: str):
    from mmdata.shards.build import ShardConfig

    return build_config(ShardConfig, {}, cfg.sections["shard"], preset={"tokenizers": tokenizers})


def _quantize(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.quantize import QuantizeStage

    return QuantizeStage(_quantize_config(cfg, str(tokenizer_dir(cfg, work))))


def _shard(cfg: PipelineConfig, work: WorkDir):
    from mmdata.pipelines.shard import ShardStage

    return ShardStage(Store(cfg.out, work.store.options), _shard_config(cfg, str(tokenizer_dir(cfg, work))))


# each section's config, built to check it before any work (the tokenizer folder: not needed to check)
SECTION_CHECKS: dict[str, Callable[[PipelineConfig], Any]] = {
    "download": _download_config, "frames": lambda c: _media_config(c, "frames"),
    "audio": lambda c: _media_config(c, "audio"), "align": lambda c: _align_config(c), "shots": _shots_config,
    "vad": _vad_config, "filter": _filter_config, "dedup": _dedup_config,
    "tokenizers": lambda c: _fit_configs(c), "quantize": lambda c: _quantize_config(c, "tokenizers"),
    "shard": lambda c: _shard_config(c, "tokenizers"),
}


STAGE_MAKERS: dict[str, Callable[[PipelineConfig, WorkDir], Any]] = {
    "download": _download, "shots": _shots, "vad": _vad, "frames": _media("frames"), "audio": _media("audio"),
    "align": _align, "filter": _filter, "signatures": _signatures, "dedup": _dedup, "quantize": _quantize,
    "shard": _shard,
}


def _segment_if_asked(cfg: PipelineConfig, work: WorkDir) -> None:
    """`align.segment` makes clips from whole-source transcripts: it must run before frames and audio."""
    align = _align_config(cfg)
    if align.segment != "none":
        from mmdata.pipelines.align import segment_work

        sources, clips = segment_work(work, align)
        click.echo(f"segment ({align.segment}): {sources} sources -> {clips} clips")


def run_pipeline(cfg: PipelineConfig) -> list[StepResult]:
    from mmdata.environment import STEP_NEEDS, Needs, check_needs
    from mmdata.pipelines.executors import ray_session

    # every step's needs before the first step: a broken install must not surface after an hour of download
    needs = Needs()
    segmenting = _align_config(cfg).source_stage if "download" in cfg.stages else None  # runs before segmenting
    for name in (*cfg.stages, *([segmenting] if segmenting else [])):
        needs = needs | STEP_NEEDS.get(name, Needs())
    check_needs(needs, "mmdata run")
    work = WorkDir(cfg.work, cfg.storage or None)
    with ray_session(cfg.runner):
        return _stream(cfg, work)


def _stream(cfg: PipelineConfig, work: WorkDir) -> list[StepResult]:
    """Every runner stage and the tokenizer fit of the pipeline, streamed chunk by chunk (stream.py)."""
    from mmdata.pipelines.executors import make_executor
    from mmdata.pipelines.stream import ChunkGraph, Fitted, stream_stages, summaries
    from mmdata.shards.parts import record_stamps

    results: list[StepResult] = []
    stages = {name: STAGE_MAKERS[name](cfg, work) for name in cfg.stages if name == "download"}  # imports the manifest
    if stages and _align_config(cfg).segment != "none":
        # segmenting rewrites the clip table from whole-source transcripts: every download first
        click.echo(click.style("download (all sources first: align.segment makes the clips)", bold=True))
        s = run_stage(stages.pop("download"), work, cfg.runner)
        click.echo(s.render())
        results.append(StepResult("download", s.ok, s.failed, s.wall_s, s.reasons))
        source_stage = _align_config(cfg).source_stage
        if source_stage:  # the clips come from the shots or the speech: every source's first
            s = run_stage(STAGE_MAKERS[source_stage](cfg, work), work, cfg.runner)
            click.echo(s.render())
            results.append(StepResult(source_stage, s.ok, s.failed, s.wall_s, s.reasons))
        _segment_if_asked(cfg, work)
    stages.update({part: STAGE_MAKERS[part](cfg, work) for name in cfg.stages for part in PARTS.get(name, (name,))
                   if part in STAGE_MAKERS and part != "download" and part not in {r.stage for r in results}})
    if not stages:
        refuse([], cfg.runner.force, _review_tokenizers(cfg, work))
        return results + ([_tokenizers(cfg, work)] if "tokenizers" in cfg.stages else [])
    chunks = sorted(work.chunks())
    tasks, planned, redone = _plan(cfg, work, stages)
    records = record_stamps(stages["shard"].out, chunks) if "shard" in stages else {}  # to tell chunks sharded now
    sample = fit_sample(cfg, chunks) if "tokenizers" in cfg.stages else None
    executor = make_executor(cfg.runner)
    n_tasks = {name: len(t) for name, t in tasks.items()}
    on_pool = {n: s for n, s in stages.items() if not s.prefix}  # prefix stages run here, in chunk order
    pool = executor.pool(on_pool, work, {n: k for n, k in n_tasks.items() if n in on_pool})
    # enough chunks in flight to keep every worker busy across the layers, and the whole fit sample
    in_flight = cfg.runner.max_chunks_in_flight or max(len(sample or ()), 2 * pool.size) + 2
    graph = ChunkGraph(list(stages), tasks, chunks, set(sample) if sample is not None else None, in_flight,
                       serial={n for n, s in stages.items() if s.concurrency > 1},
                       prefix={n for n, s in stages.items() if s.prefix})
    fit_note = f"; tokenizers fitted on chunk(s) {_ranges(sample)}" if sample else ""
    click.echo(click.style(f"streaming {', '.join(stages)} over {len(chunks)} chunk(s), at most {in_flight} in "
                           f"flight ({pool.note}){fit_note}", bold=True))

    def fit() -> Fitted:
        before = _tokenizer_hashes(cfg, work)
        result = _tokenizers(cfg, work, sample)
        after = _tokenizer_hashes(cfg, work)
        refitted = "quantize" in stages and any(after.get(kind) != h for kind, h in before.items())
        return Fitted(result, _replan_after_refit(cfg, work, stages, planned, redone) if refitted else {})

    try:
        clocks, fit_result = stream_stages(stages, work, pool, graph, fit if sample is not None else None,
                                           cfg.runner.progress)
    finally:
        pool.close()
    done = summaries({n: s for n, s in stages.items() if n != "shard"}, work, clocks, planned, redone)
    for name in (part for n in cfg.stages for part in PARTS.get(n, (n,))):  # in order, the fit where the YAML has it
        if name == "tokenizers" and fit_result is not None:
            results.append(fit_result)
        elif name == "shard":
            t0 = clocks["shard"].first or time.perf_counter()  # the shard step: its first job to the merge
            results.append(_merge_shards(stages["shard"], work, records, t0, clocks["shard"].failures))
        elif name in done:
            s = done[name]
            click.echo(s.render())
            results.append(StepResult(name, s.ok, s.failed, s.wall_s, s.reasons))
    nodes = pool.chunks_per_node
    on_nodes = (f"; ray: {sum(nodes.values())} chunk jobs on {len(nodes)} node(s)"
                + (f", {pool.chunks_on_gpu} of them on GPU workers" if pool.chunks_on_gpu else "")) if nodes else ""
    click.echo(f"workers: {pool.note}{on_nodes}")
    return results


def _plan(cfg: PipelineConfig, work: WorkDir, stages: dict[str, Any]) -> tuple[dict, dict, dict]:
    """Each stage's chunk tasks, planned as its command plans them, (tasks run, chunks skipped) and the
    summary's line on chunks redone, per stage. Every stage's chunks are reviewed first (stamps.py), so
    that a section edited since they were made stops the run before anything changes, in one message."""
    from mmdata.pipelines.runner import plan, redone_note
    from mmdata.pipelines.stamps import Stamps, review

    runners = {name: stage for name, stage in stages.items() if name != "shard"}
    refits = _review_tokenizers(cfg, work)  # first: a forced refit changes quantize's options
    stamps = Stamps(work, runners)  # a stage of this run is stamped by what it will make, not what it made
    chunks = work.chunks()
    reviews = {name: review(work, name, stamps, chunks, _as_inputs(cfg, name)) for name in runners}
    refuse(list(reviews.values()), cfg.runner.force, refits)
    tasks, planned, redone = {}, {}, {}
    for name, stage in runners.items():
        work.clean_temp(name)
        todo, skipped = plan(stage, work, cfg.runner.retry_failed, cfg.runner.force, stamps, reviews[name])
        tasks[name] = {t.chunk: t for t in todo}
        planned[name] = (len(todo), skipped)
        redone[name] = redone_note(todo)
    if "shard" in stages:
        pending = {c for t in tasks.values() for c in t}
        tasks["shard"], planned["shard"] = _plan_shard(cfg, work, stages["shard"], pending)
    return tasks, planned, redone


def _as_inputs(cfg: PipelineConfig, stage: str) -> tuple[str, ...]:
    """Options of `stage` that are inputs in this run (stamps.review): quantize's tokenizers, when the set is the
    run's own (WORK/tokenizers), change only when the run fits them again, and what was quantized with the old
    ones is then out of date, no question asked. A set named by `dir:` is the user's: another one is an option."""
    return ("tokenizers",) if stage == "quantize" and _own_tokenizers(cfg) else ()


def _replan_after_refit(cfg: PipelineConfig, work: WorkDir, stages: dict[str, Any], planned: dict,
                        redone: dict) -> dict[str, dict[int, Any]]:
    """Once the run's fit has replaced a tokenizer (its sample's inputs changed): quantize's chunks made with the
    old one, planned again, and a shard job for each. No quantize or shard job has started yet (they wait for
    the fit), so these replace theirs. Updates the summary's `planned` and `redone` lines for quantize."""
    from mmdata.pipelines.runner import ChunkTask, plan, redone_note
    from mmdata.pipelines.stamps import Stamps, review

    stamps = Stamps(work, {name: stage for name, stage in stages.items() if name != "shard"})
    chunks = work.chunks()
    reviewed = review(work, "quantize", stamps, chunks, _as_inputs(cfg, "quantize"))
    todo, skipped = plan(stages["quantize"], work, cfg.runner.retry_failed, cfg.runner.force, stamps, reviewed)
    planned["quantize"], redone["quantize"] = (len(todo), skipped), redone_note(todo)
    tasks = {"quantize": {t.chunk: t for t in todo}}
    if "shard" in stages:
        tasks["shard"] = {t.chunk: ChunkTask(t.chunk, chunks[t.chunk], None, len(chunks[t.chunk])) for t in todo}
    return tasks


def _tokenizer_hashes(cfg: PipelineConfig, work: WorkDir) -> dict[str, str]:
    """{kind: content hash} of the run's tokenizer set as it is (none yet: {})."""
    from mmdata.tokenizers import load_tokenizer_set

    try:
        return {kind: c["hash"] for kind, c in load_tokenizer_set(tokenizer_dir(cfg, work)).items()}
    except (ConfigError, OSError, ValueError):
        return {}


def _plan_shard(cfg: PipelineConfig, work: WorkDir, shard, pending: set[int]) -> tuple[dict, tuple[int, int]]:
    """Shard jobs: chunks an earlier stage still runs on (`pending`), and chunks whose shards are out of date.
    index.json goes now, before any shard changes, and comes back when every chunk is through."""
    from mmdata.pipelines.runner import ChunkTask
    from mmdata.shards.parts import plan_chunks, prepare_out

    chunks = work.chunks()
    prepare_out(shard.out, shard.cfg.prefix)
    tok = Store(tokenizer_dir(cfg, work), work.store.options)
    if "tokenizers" in cfg.stages and not all(tok.exists(f"{k}/config.json") for k in ("text", "speech", "vision")):
        todo, skipped = list(chunks), 0  # the fit may add a tokenizer: each chunk's job checks its own fingerprint
    else:
        todo, skipped = plan_chunks(work, shard.out, shard.cfg, chunks, pending)
    return {c: ChunkTask(c, chunks[c], None, len(chunks[c])) for c in todo}, (len(todo), skipped)


def _merge_shards(stage, work: WorkDir, before: dict, t0: float, failures: list[str]) -> StepResult:
    """Once every chunk is sharded: index.json and sizes.json from the chunks' records."""
    from mmdata.shards.build import finish_shards

    s = finish_shards(work, stage.out, stage.cfg, before, t0, failures)
    click.echo(s.render())
    return StepResult("shard", s.samples, sum(s.failed.values()), s.wall_s, dict(s.failed),
                      note=f"{len(s.shards)} shards, {s.bytes / 1e6:.1f} MB in {stage.out.url}")


def _ranges(chunks: list[int] | None) -> str:
    if not chunks:
        return "none"
    return f"{chunks[0]}" if len(chunks) == 1 else f"{chunks[0]}-{chunks[-1]}" if chunks == list(
        range(chunks[0], chunks[-1] + 1)) else ", ".join(map(str, chunks))


def pipeline_funnel(cfg: PipelineConfig):
    """The funnel of the run's work store (mmdata/filters/funnel.py), with the shards' count when sharded."""
    from mmdata.filters.funnel import funnel

    out = Store(cfg.out, cfg.storage or None)
    return funnel(WorkDir(cfg.work, cfg.storage or None), out if out.exists("index.json") else None)


def render(results: list[StepResult]) -> str:
    lines = ["", "pipeline summary", f"  {'stage':<11} {'ok':>7} {'failed':>7} {'seconds':>8}  failures by reason"]
    for r in results:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"  {r.stage:<11} {r.ok:>7} {r.failed:>7} {r.seconds:>8.1f}  {reasons or r.note}")
    return "\n".join(lines)
