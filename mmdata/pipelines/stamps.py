"""Stamps: what each stage's chunk was made with, so that a re-run notices what changed (README "Resume
rules").

Every chunk table a stage commits carries a stamp (workdir.ChunkTable.stamp):

    {"stage": "frames", "options": {"fps": 2.0, "size": 224, ...},
     "inputs": {"clips": "<sha256>", "download": "<fingerprint>"}, "fingerprint": "<sha256 of the three>"}

`options` are the options that shape the stage's output (`Stage.options()`: its config less `run_only`:
workers, timeouts, retries, rate limits, devices do not count); `inputs` the digest of the chunk's clips and
the fingerprints of what the stage reads for that chunk (stream.READS), so a frames chunk made again with
another fps makes the quantize chunk that read the old frames out of date too. The driver reviews every
chunk before any work (runner.plan):

  - same fingerprint: the chunk is done (resume: only `--retry-failed` runs it again);
  - other options: the run is refused with one message naming each option, old -> new; `force` redoes it;
  - same options, other inputs (an input stage was redone): the chunk is redone, no question asked.

A chunk redone takes the chunks of the stages that read it (for that chunk) with it, so no stage ever holds
outputs made from two versions of its inputs, and staged items of a killed run with other options are thrown
away by the job (WorkDir.stage_chunk). A chunk committed without a stamp (test builders, an mmdata before
stamps) is kept as it is: what made it is unknown; `force` redoes it.
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmdata.errors import ConfigError

if TYPE_CHECKING:
    from mmdata.pipelines.base import Stage
    from mmdata.records import Clip
    from mmdata.workdir import WorkDir

UNRECORDED = "unrecorded"  # an input chunk committed without a stamp
UNREADABLE = "unreadable"  # an input chunk whose table does not read
# stages whose chunk N is judged after chunk N-1 and depends on it (dedup): a chunk's stamp carries the
# previous chunk's fingerprint, so a chunk redone redoes every chunk after it
PREFIX_STAGES = ("dedup",)


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def jsonable(value: Any) -> Any:
    """An option's value as JSON keeps it (tuples become lists), so a stored stamp compares equal to a new one."""
    return json.loads(json.dumps(value, default=str))


def config_options(cfg: Any, run_only: tuple[str, ...]) -> dict[str, Any]:
    """A config dataclass's options that shape output: its init fields less `run_only`. An option the config
    names in `later_options` (added in a later version) is left out while at its default, so that upgrading
    mmdata does not make every chunk stamped before look as made with other options."""
    later = getattr(cfg, "later_options", ())
    return {f.name: jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
            if f.init and f.name not in run_only
            and not (f.name in later and getattr(cfg, f.name) == f.default)}


def make_stamp(stage: str, options: dict[str, Any], inputs: dict[str, str | None]) -> dict[str, Any]:
    stamp = {"stage": stage, "options": jsonable(options), "inputs": dict(inputs)}
    return {**stamp, "fingerprint": digest(stamp)}


def clips_digest(clips: list["Clip"]) -> str:
    return digest([c.to_dict() for c in clips])


def reads(stage: str) -> tuple[str, ...]:
    from mmdata.pipelines.stream import READS

    return READS.get(stage, ())


def readers(stage: str) -> list[str]:
    """The stages with chunk tables that read `stage`'s output, directly or through others."""
    from mmdata.pipelines.stream import READS

    out: list[str] = []
    for s, inputs in READS.items():
        if stage in inputs and s != "shard":  # shard keeps its own records, fingerprinted by content
            out += [s] + [r for r in readers(s) if r not in out]
    return list(dict.fromkeys(out))


def stored_fingerprint(work: "WorkDir", stage: str, chunk: int) -> str | None:
    """The fingerprint a committed chunk carries; None when the stage has not committed it."""
    from mmdata.workdir import UnreadableTable

    try:
        table = work.read_table(stage, chunk)
    except UnreadableTable:
        return UNREADABLE
    if table is None:
        return None
    return table.stamp["fingerprint"] if table.stamp else UNRECORDED


class Stamps:
    """The stamps this run's stages will give each chunk. A stage of this run is fingerprinted by what it
    will be (its options now); a stage it reads but does not run, by what its committed chunk carries."""

    def __init__(self, work: "WorkDir", stages: dict[str, "Stage"]):
        self.work, self.stages = work, stages
        self._options: dict[str, dict[str, Any]] = {}
        self._memo: dict[tuple[str, int], dict[str, Any]] = {}
        self._all: dict[int, list["Clip"]] | None = None
        self._order: list[int] | None = None

    def options(self, stage: str) -> dict[str, Any]:
        if stage not in self._options:
            self._options[stage] = jsonable(self.stages[stage].options())
        return self._options[stage]

    def inputs(self, stage: str, chunk: int, clips: list["Clip"]) -> dict[str, str | None]:
        found: dict[str, str | None] = {"clips": clips_digest(clips)}
        for d in reads(stage):
            found[d] = self.expected(d, chunk, clips)["fingerprint"] if d in self.stages \
                else stored_fingerprint(self.work, d, chunk)
        if stage in PREFIX_STAGES and (before := self._previous(chunk)) is not None:
            found["previous"] = self.expected(stage, before, self._chunks()[before])["fingerprint"] \
                if stage in self.stages else stored_fingerprint(self.work, stage, before)
        return found

    def expected(self, stage: str, chunk: int, clips: list["Clip"]) -> dict[str, Any]:
        k = (stage, chunk)
        if k not in self._memo and stage in PREFIX_STAGES and stage in self.stages:
            for c in sorted(self._chunks()):  # the chain from the first chunk up, without deep recursion
                if c >= chunk:
                    break
                if (stage, c) not in self._memo:
                    self._memo[(stage, c)] = make_stamp(stage, self.options(stage),
                                                        self.inputs(stage, c, self._chunks()[c]))
        if k not in self._memo:
            self._memo[k] = make_stamp(stage, self.options(stage), self.inputs(stage, chunk, clips))
        return self._memo[k]

    def _chunks(self) -> dict[int, list["Clip"]]:
        if self._all is None:
            self._all = self.work.chunks()
        return self._all

    def _previous(self, chunk: int) -> int | None:
        if self._order is None:
            self._order = sorted(self._chunks())
        i = bisect.bisect_left(self._order, chunk)
        return self._order[i - 1] if i > 0 else None


@dataclass
class Review:
    """One stage's committed chunks against what this run would make of them."""
    stage: str
    redo_options: list[int] = field(default_factory=list)  # made with other options: refused unless forced
    redo_inputs: list[int] = field(default_factory=list)  # same options, other inputs: redone
    unstamped: list[int] = field(default_factory=list)  # committed without a stamp: kept unless forced
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # option -> (old, new), first seen
    chunks: int = 0

    def redo(self, force: bool) -> set[int]:
        return set(self.redo_inputs) | (set(self.redo_options) | set(self.unstamped) if force else set())

    def refusal(self) -> str:
        """The message naming what changed (old -> new), for the chunks made with other options."""
        if not self.redo_options:
            return ""
        changes = show_changes(self.changed)
        later = [s for s in readers(self.stage)]
        also = f" (and the {', '.join(later)} chunks that read them)" if later else ""
        return (f"{self.stage}: {len(self.redo_options)} of {self.chunks} chunk(s) were made with other options: "
                f"{changes}. Use --force to redo them{also}, or the options they were made with")


def _show(value: Any) -> str:
    return "(not recorded)" if value is _MISSING else json.dumps(value)


_MISSING = object()


def changed_options(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """option -> (old, new) of the options whose values differ (one missing on a side: "(not recorded)")."""
    return {k: (old.get(k, _MISSING), new.get(k, _MISSING)) for k in sorted(set(old) | set(new))
            if old.get(k, _MISSING) != new.get(k, _MISSING)}


def show_changes(changed: dict[str, tuple[Any, Any]]) -> str:
    """`fps 2.0 -> 4.0, size 224 -> 112`: what a refusal names."""
    return ", ".join(f"{k} {_show(old)} -> {_show(new)}" for k, (old, new) in sorted(changed.items()))


def review(work: "WorkDir", stage: str, stamps: Stamps, chunks: dict[int, list["Clip"]],
           as_inputs: tuple[str, ...] = ()) -> Review:
    """Compare each committed chunk's stamp with the one this run gives it (reads only). `as_inputs`: options
    that, when they alone changed, make the chunk out of date like an input would (quantize's tokenizers when
    they are the run's own set: they change only when the run fits them again, forced or from a changed sample)."""
    from mmdata.workdir import UnreadableTable

    out = Review(stage, chunks=len(chunks))
    for chunk, clips in chunks.items():
        try:
            table = work.read_table(stage, chunk)
        except UnreadableTable:
            continue  # planned as its rows say (runner.plan reads it again and reports it)
        if table is None:
            continue
        if table.stamp is None:
            out.unstamped.append(chunk)
            continue
        want = stamps.expected(stage, chunk, clips)
        if table.stamp.get("fingerprint") == want["fingerprint"]:
            continue
        old = table.stamp.get("options") or {}
        changed = changed_options(old, want["options"])
        if changed and not set(changed) <= set(as_inputs):
            out.redo_options.append(chunk)
            out.changed = {**changed, **out.changed}  # first seen kept
        else:
            out.redo_inputs.append(chunk)
    return out


def refuse(reviews: list[Review], force: bool, also: list[str] = ()) -> None:
    """Stop before any work when some chunks (or, `also`, other outputs: the tokenizers) were made with other
    options and `force` is not given."""
    if force:
        return
    messages = [m for r in reviews if (m := r.refusal())] + list(also)
    if messages:
        raise ConfigError("the work store holds outputs made with other options; nothing was run.\n  "
                          + "\n  ".join(messages))


def forget(work: "WorkDir", stage: str, chunk: int, keys: list[str]) -> None:
    """Before a chunk is redone: the chunks that read it go (they read what is about to change), and so do
    the crash marks of its items (they get another chance under the new options)."""
    for later in readers(stage):
        if work.has_table(later, chunk):
            work.drop_table(later, chunk)
    for key in keys:
        work.unmark(stage, "crashed", key)
