"""The training data loader: webdataset shards -> deterministic streams -> padded batches.

The sample order is a function of (seed, streams) only, not of --nproc or --workers: the data is cut into
`streams` independent streams (like MosaicML streaming's canonical nodes), and every global micro-batch
holds a fixed-size chunk from each stream. Streams are dealt round-robin to (rank, worker) slots, which
is how the loader splits by node and by worker. So 2 ranks see exactly the global batch 1 rank sees,
and a resumed run skips each stream to where it stopped and sees the same samples as an unbroken run.

One stream, as a flat pipeline (what the stream holds at each point in the comments):

    shard urls, drawn with replacement or as seeded passes       # "corpus/shard-000003.tar"
    -> wds.tarfile_to_samples                                    # {"__key__", "json": b"..", "vtok.npy": b".."}
    -> wds.shuffle (seeded buffer; per pass without resampling)  # same, shuffled
    -> weighted mix of corpora (seeded)                          # same, from several corpora
    -> skip to the resume position (before decoding: cheap)      # same
    -> Preprocess: decode, check, crop, mask (seed per sample)   # {"key", "vision": (tok, inp, tgt, pos), ..}
    -> chunks of the stream's share of the micro-batch, collated # Batch
"""
from __future__ import annotations

import itertools
import logging
import random
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from mmdata.errors import ConfigError, ItemError
from mmdata.store.fs import Store, glob_files, has_glob, storage_options_from_env
from mmdata.train.config import TrainConfig
from mmdata.train.samples import Batch, Preprocess, collate, merge

log = logging.getLogger("mmdata.train.data")
TOKENIZER_NAMES = {"vision": "vision", "speech": "speech", "language": "text"}


def _seed(*parts: int) -> int:
    """A stable integer seed from integers (Python's hash() of strings changes per process)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _gopen_fsspec(url, mode="rb", bufsize=8192, **kw):
    """webdataset's opener for s3:// shards: through fsspec (s3fs), with the same credentials, endpoint and
    storage options as every other mmdata store (webdataset itself opens s3 only through `pipe:` commands)."""
    import fsspec

    return fsspec.open(url, mode, **storage_options_from_env()).open()


def register_store_schemes() -> None:
    from webdataset.gopen import gopen_schemes

    gopen_schemes.setdefault("s3", _gopen_fsspec)


def _index_store(spec: str) -> Store | None:
    """The shard folder `spec` names (a path or a URL) when it holds an index.json written by `mmdata shard`."""
    if spec.startswith("pipe:") or "{" in spec or spec.endswith(".tar") or has_glob(spec):
        return None
    store = Store(spec)
    return store if store.exists("index.json") else None


def _globbed(url: str) -> list[str]:
    """A glob's files in name order (a plain URL as it is); a glob that matches nothing is an error that
    names it (a quoted pattern reaches us unexpanded: the shell left it to us)."""
    if url.startswith("pipe:") or not has_glob(url):
        return [url]
    found = glob_files(url)
    if not found:
        raise ConfigError(f"data shards: the pattern {url!r} matches no file")
    return found


def expand_shards(spec: str) -> list[str]:
    """Brace and '::' expansion as webdataset does it, then globs (`*`, `?`, `[...]`, on local paths and
    object-store URLs alike), or a folder (or URL) written by `mmdata shard` (the shards its index.json lists,
    in order); local shards must exist."""
    from webdataset.shardlists import expand_urls

    register_store_schemes()
    store = _index_store(spec)
    if store is not None:
        try:
            urls = [store.join(s["name"]) for s in store.read_json("index.json")["shards"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"train: data shards {spec!r}: cannot read the shard list of its index.json: "
                              f"{e}") from e
    else:
        urls = [u for url in expand_urls(spec) for u in _globbed(url)]
    missing = [u for u in urls if "://" not in u and not u.startswith("pipe:") and not Path(u).is_file()]
    if not urls or missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ConfigError(f"train: data shards {spec!r}: " + (f"missing file(s) {shown}" if missing else "matches no shard"))
    return urls


def read_vocab(urls: list[str]) -> dict[str, dict]:
    """Tokenizer entries {modality: {vocab_size, hash, ..}} from index.json beside the shards, or {}."""
    if urls[0].startswith("pipe:") or ("://" in urls[0] and not urls[0].startswith("s3://")):
        return {}
    folder = Store(urls[0].rsplit("/", 1)[0] if "/" in urls[0] else ".")
    index = folder.join("index.json")
    if not folder.exists("index.json"):
        return {}
    try:
        doc = folder.read_json("index.json")
    except (OSError, ValueError) as e:
        raise ConfigError(f"train: cannot read {index}: {e}") from e
    toks, sizes = doc.get("tokenizers") or {}, doc.get("vocab_sizes") or {}
    found = {m: toks[name] for m, name in TOKENIZER_NAMES.items() if isinstance(toks.get(name), dict)}
    for m, size in sizes.items():  # older indexes: sizes without tokenizer entries
        found.setdefault(m, {"vocab_size": size})
    return found


def resolve_vocab(cfg: TrainConfig) -> TrainConfig:
    """Fill model.vocab_* left at 0 from the corpora's index.json; corpora must agree with each other."""
    found: dict[str, tuple[int, str, str]] = {}
    for corpus in cfg.data:
        for m, tok in read_vocab(expand_shards(corpus.shards)).items():
            size, h = int(tok.get("vocab_size", 0)), str(tok.get("hash", ""))
            if m in found and (found[m][0], found[m][1]) != (size, h):
                raise ConfigError(f"train: corpora disagree on the {m} tokenizer: {found[m][2]} has vocab "
                                  f"{found[m][0]} (hash {found[m][1]!r}), {corpus.shards} has {size} (hash {h!r})")
            found[m] = (size, h, corpus.shards)
    model = cfg.model
    for m, attr in (("vision", "vocab_vision"), ("speech", "vocab_speech"), ("language", "vocab_text")):
        if getattr(model, attr) == 0:
            if m not in found or found[m][0] <= 0:
                raise ConfigError(f"train: model.{attr} is 0 and no index.json beside the shards gives "
                                  f"tokenizers.{TOKENIZER_NAMES[m]}.vocab_size; set model.{attr}")
            setattr(model, attr, found[m][0])
        if m in found and found[m][0] == getattr(model, attr) and found[m][1]:
            model.tokenizers[m] = found[m][1]
    return cfg


class StreamPlan:
    """Which streams a (rank, worker) slot owns and how many samples each stream adds per micro-batch."""

    def __init__(self, cfg: TrainConfig, world: int, workers: int):
        self.n = cfg.streams or world * max(workers, 1)
        slots = world * max(workers, 1)
        if self.n % slots:
            raise ConfigError(f"train: streams = {self.n} must be a multiple of nproc * max(workers, 1) = {slots}")
        if cfg.micro_batch < self.n:
            raise ConfigError(f"train: batch_size / accum_steps = {cfg.micro_batch} must be >= streams = {self.n}")
        b, n = cfg.micro_batch, self.n
        self.chunk = [b // n + (s < b % n) for s in range(n)]
        self.world, self.workers = world, max(workers, 1)

    def owned(self, rank: int, worker: int) -> list[int]:
        return list(range(rank * self.workers + worker, self.n, self.world * self.workers))

    def rank_streams(self, rank: int) -> list[int]:
        return sorted(s for w in range(self.workers) for s in self.owned(rank, w))


def _corpus_samples(urls: list[str], cfg: TrainConfig, n_streams: int, stream: int, corpus: int) -> Iterator[dict]:
    """Endless shuffled raw samples of one corpus for one stream."""
    import webdataset as wds

    name, buf = cfg.data[corpus].shards, cfg.shuffle_buffer
    if cfg.resample:  # OpenCLIP's resampled shards: every stream draws from all shards with its own seed
        rng = random.Random(_seed(cfg.seed, stream, corpus, 1))
        draws = (urls[rng.randrange(len(urls))] for _ in itertools.count())
        shuffle = wds.shuffle(buf, min(buf, 100), rng=random.Random(_seed(cfg.seed, stream, corpus, 3)))
        yield from shuffle(_raw_samples(draws, len(urls), name))
        return
    own = urls[stream::n_streams]
    if not own:
        raise ConfigError(f"train: {name} has {len(urls)} shards, fewer than streams = {n_streams}; "
                          "set resample: true or fewer streams")
    for epoch in itertools.count():  # exact passes: the shuffle buffer empties at each pass's end
        order = list(own)
        random.Random(_seed(cfg.seed, stream, corpus, epoch, 2)).shuffle(order)
        shuffle = wds.shuffle(buf, min(buf, 100), rng=random.Random(_seed(cfg.seed, stream, corpus, epoch, 3)))
        n = 0
        for n, sample in enumerate(shuffle(_raw_samples(iter(order), len(order), name)), 1):
            yield sample
        if n == 0:
            raise ConfigError(f"train: no readable sample in the shards of {name} given to stream {stream}")


def _raw_samples(urls: Iterator[str], n_urls: int, name: str) -> Iterator[dict]:
    """Tar samples, shard after shard; unreadable shards are logged and skipped, but a stream that finds
    no sample in a whole round of shards stops with an error instead of spinning forever."""
    import webdataset as wds

    register_store_schemes()  # in this process: a DataLoader worker may be a fresh one
    empty_run = 0
    for url in urls:
        n = 0
        for sample in wds.tarfile_to_samples(handler=_warn_shard)(iter([{"url": url}])):
            n += 1
            yield sample
        empty_run = 0 if n else empty_run + 1
        if empty_run > n_urls + 1:
            raise ConfigError(f"train: no readable sample in any shard of {name} (last tried {url})")


def _warn_shard(exn: Exception) -> bool:
    log.warning("skipping unreadable shard data: %s", exn)
    return True


def stream_raw(cfg: TrainConfig, corpora: list[list[str]], n_streams: int, stream: int) -> Iterator[dict]:
    """The raw sample sequence of one stream: per-corpus shuffled tar samples, mixed by weight."""
    subs = [_corpus_samples(urls, cfg, n_streams, stream, ci) for ci, urls in enumerate(corpora)]
    if len(subs) == 1:
        yield from subs[0]
        return
    weights = [c.weight for c in cfg.data]
    mix = random.Random(_seed(cfg.seed, stream, 4))
    while True:
        yield next(subs[mix.choices(range(len(subs)), weights)[0]])


_SKIPS: dict[str, int] = {}


def _note_skip(e: ItemError, sample: dict) -> None:
    """Warn about the first few bad samples of each reason, then every 1000th (a whole corpus made with
    the wrong tokenizer should not bury the log)."""
    n = _SKIPS[e.reason] = _SKIPS.get(e.reason, 0) + 1
    if n <= 5 or n % 1000 == 0:
        log.warning("skipping sample %s from %s (%s #%d): %s", sample.get("__key__"), sample.get("__url__"),
                    e.reason, n, e.detail)


def stream_chunks(cfg: TrainConfig, corpora: list[list[str]], plan: StreamPlan, stream: int,
                  start: int) -> Iterator[tuple[Batch, int]]:
    """(chunk, raw position after it) forever. Masks are seeded by the raw position, so they do not
    depend on where a run was resumed."""
    pre, size = Preprocess(cfg, train=True), plan.chunk[stream]
    raw = itertools.islice(stream_raw(cfg, corpora, plan.n, stream), start, None)
    buf = []
    for idx, sample in enumerate(raw, start=start):
        try:
            buf.append(pre(sample, np.random.default_rng([cfg.seed, stream, idx])))
        except ItemError as e:
            _note_skip(e, sample)
            continue
        if len(buf) == size:
            yield collate(buf, cfg), idx + 1
            buf = []


class StreamDataset(torch.utils.data.IterableDataset):
    """Yields (stream, chunk, raw position) for the streams this rank's worker owns, step by step.
    Module-level so that spawned DataLoader workers (inside --nproc processes) can unpickle it."""

    def __init__(self, cfg: TrainConfig, corpora: list[list[str]], plan: StreamPlan, rank: int, start: list[int]):
        self.cfg, self.corpora, self.plan, self.rank, self.start = cfg, corpora, plan, rank, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = self.plan.owned(self.rank, info.id if info else 0)
        its = [stream_chunks(self.cfg, self.corpora, self.plan, s, self.start[s]) for s in mine]
        while True:
            for s, it in zip(mine, its):
                chunk, pos = next(it)
                yield s, chunk, pos


class TrainLoader:
    """Endless micro-batches for one rank; `position` is what a checkpoint stores to resume the data."""

    def __init__(self, cfg: TrainConfig, rank: int = 0, world: int = 1, position: list[int] | None = None):
        self.cfg, self.rank = cfg, rank
        self.plan = StreamPlan(cfg, world, cfg.workers)
        if position is not None and len(position) != self.plan.n:
            raise ConfigError(f"train: the checkpoint has {len(position)} data streams but this run has "
                              f"{self.plan.n}; set streams: {len(position)}")
        self.position = list(position or [0] * self.plan.n)
        corpora = [expand_shards(c.shards) for c in cfg.data]
        ds = StreamDataset(cfg, corpora, self.plan, rank, list(self.position))
        extra = {"prefetch_factor": 2 * len(self.plan.owned(rank, 0))} if cfg.workers else {}
        self.loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=cfg.workers, **extra)
        self._it = iter(self.loader)
        self.streams = self.plan.rank_streams(rank)

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        got = {}
        for _ in self.streams:  # one chunk per owned stream, workers answering round-robin
            s, chunk, pos = next(self._it)
            assert s not in got, f"stream {s} answered twice in one step"
            got[s] = chunk
            self.position[s] = pos
        return merge([got[s] for s in self.streams], self.cfg)
