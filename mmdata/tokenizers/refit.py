"""What a fitted tokenizer was fitted with, so that a re-run with other fit options notices (README "Resume
rules").

Each tokenizer folder's config.json records `fit_options`: the options of its fit config that shape it (all
but `device`, where k-means runs) and `fit_chunks`, its sample (`mmdata run`: the first N chunks; 0, as with
`mmdata tokenizers fit-*`: every chunk). They are part of the content hash, so quantize's stamp (the
tokenizers by hash) and the shards' fingerprints change with them.

Before a fit (`mmdata tokenizers fit-*`) or before any work (`mmdata run`, over its own set), a tokenizer
recorded with other options is refused, naming each option, old -> new; `force` fits it again. A tokenizer
without a record (an older mmdata, a set made by hand) is used as it is.

Each also records `fit_inputs`, a digest of what its fit read (fit.fit_inputs: each sample clip's key and its
transcript, audio or frames record). When `mmdata run` comes to its fit and the run's own set holds a tokenizer
whose sample reads otherwise now (an item of the sample chunks that had failed was retried and succeeded, a
filter or de-dup decision changed), it fits that one again, no question asked: the sample is an input, and a
stage whose inputs changed is redone (pipelines/stamps.py). Quantize then redoes the chunks made with the old
tokenizer, and shard the shards that hold them, in the same run; the same corpus as a run that never failed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdata.errors import ConfigError
from mmdata.pipelines.stamps import changed_options, config_options, show_changes
from mmdata.store.fs import Store

RUN_ONLY = ("device",)  # how the fit runs, not what it makes
KEY = "fit_options"  # in the tokenizer's config.json
INPUTS_KEY = "fit_inputs"  # beside it: what the fit read (not in the content hash: store.UNHASHED)


def fit_options(cfg: Any, fit_chunks: int) -> dict[str, Any]:
    """What shapes a tokenizer fitted with `cfg` (a Text/Speech/VisionFitConfig) on the first `fit_chunks`
    chunks (0: all)."""
    return {**config_options(cfg, RUN_ONLY), "fit_chunks": fit_chunks}


def changes(where: str | Path, kind: str, want: dict[str, Any],
            storage_options: dict[str, Any] | None = None) -> dict[str, tuple[Any, Any]]:
    """option -> (old, new) between the `kind` tokenizer of the set `where` and `want`; {} when the set has
    none, or one without a record, or one fitted with `want`."""
    store = Store(where, storage_options)
    name = f"{kind}/config.json"
    if not store.exists(name):
        return {}
    try:
        old = store.read_json(name).get(KEY)
    except (OSError, ValueError, AttributeError):
        return {}  # not a tokenizer that reads: loading it says so, with its own message
    return changed_options(old, want) if isinstance(old, dict) else {}


def refusal(where: str | Path, kind: str, changed: dict[str, tuple[Any, Any]], then: str) -> str:
    return (f"tokenizers: the {kind} tokenizer in {where} was fitted with other options: {show_changes(changed)}. "
            f"Use --force to fit it again ({then}), or the options it was fitted with")


def check(where: str | Path, kind: str, want: dict[str, Any], force: bool,
          storage_options: dict[str, Any] | None = None) -> None:
    """Before `mmdata tokenizers fit-<kind>`: refuse (ConfigError) to replace a tokenizer fitted with other
    options unless `force`."""
    changed = changes(where, kind, want, storage_options)
    if changed and not force:
        raise ConfigError("nothing was fitted: " + refusal(
            where, kind, changed, "then `mmdata quantize --force` redoes the clips quantized with the old one"))


def drop(where: str | Path, kind: str, storage_options: dict[str, Any] | None = None) -> None:
    """Remove one tokenizer of a set: `mmdata run --force` fits it again, and what was made with it is redone."""
    Store(where, storage_options).remove_tree(kind)


def review_set(where: str | Path, wants: dict[str, dict[str, Any]], force: bool,
               storage_options: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """`mmdata run`, before its plan: (refusals, refits). A refusal for each tokenizer of the set fitted with
    other options than `wants` (kind -> fit_options); with `force`, those tokenizers go instead, now (the run
    fits them again, and quantize, whose stamps name the tokenizers by hash, then redoes what was made with
    them), and a line says so for each."""
    changed = {kind: c for kind, want in wants.items() if (c := changes(where, kind, want, storage_options))}
    if not force:
        return [refusal(where, kind, c, "and the quantize and shard chunks made with it")
                for kind, c in changed.items()], []
    for kind in changed:
        drop(where, kind, storage_options)
    return [], [f"tokenizers: {kind} is fitted again (--force): {show_changes(c)}" for kind, c in changed.items()]


def inputs_changed(where: str | Path, kind: str, now: str, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether the `kind` tokenizer of the set `where` was fitted on other inputs than `now` (fit.fit_inputs of
    its sample as it reads now). False for a set without it, or one fitted before the digest was recorded."""
    store = Store(where, storage_options)
    try:
        old = store.read_json(f"{kind}/config.json").get(INPUTS_KEY)
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(old, str) and old != now
