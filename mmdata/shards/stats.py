"""`mmdata stats OUT`: what the corpus holds (clips, hours, modality mixes, clip lengths, words per clip,
token usage) and what was left out and why; with `--work`, the funnel and the filter scores
(mmdata/filters/funnel.py); as text, and as an HTML page with matplotlib plots. Without OUT: the funnel alone."""
from __future__ import annotations

import base64
import collections
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdata.shards.index import TOKEN_FIELDS, ShardIndex
from mmdata.shards.reader import iter_stored_samples
from mmdata.store.fs import as_store
from mmdata.shards.sample import decode_fields

PLOTS = {  # plot name -> how the html page calls it
    "clip_lengths": "Clip lengths",
    "words_per_clip": "Words per clip",
    "modalities": "Modality combinations",
    "vision": "Vision token histogram",
    "speech": "Speech unit histogram",
    "language": "Text token histogram",
    "failures": "Failures by reason",
}
SCORE_PLOT = "score_"  # + a filter measure: that score's histogram


@dataclass
class CorpusStats:
    out: str
    shards: int = 0
    bytes: int = 0
    durations: list[float] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    combos: collections.Counter = field(default_factory=collections.Counter)
    token_counts: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> count per token id
    tokens_per_clip: dict[str, list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    vocab: dict[str, int] = field(default_factory=dict)
    failures: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> error rows
    left_out: dict[str, int] = field(default_factory=dict)
    funnel: Any = None  # filters.funnel.Funnel, with --work
    sharded: bool = True  # False: no OUT given, the funnel alone

    @property
    def clips(self) -> int:
        return len(self.durations)

    @property
    def hours(self) -> float:
        return sum(self.durations) / 3600

    def add(self, fields: dict[str, bytes]) -> None:
        meta, arrays, _ = decode_fields(fields)
        meta = meta if isinstance(meta, dict) else {}
        self.durations.append(float(meta.get("duration_s") or 0.0))
        self.words.append(len(meta.get("words") or []))
        self.combos["+".join(meta.get("modalities") or []) or "none"] += 1
        for mod, name in TOKEN_FIELDS.items():
            arr = arrays.get(name)
            if arr is None or not arr.size:
                continue
            self.tokens_per_clip[mod].append(int(arr.size))
            counts = np.bincount(arr.ravel().astype(np.int64).clip(0), minlength=self.vocab.get(mod, 0))
            have = self.token_counts.get(mod)
            if have is not None and len(have) < len(counts):
                have = np.pad(have, (0, len(counts) - len(have)))
            elif have is not None:
                counts = np.pad(counts, (0, len(have) - len(counts)))
            self.token_counts[mod] = counts if have is None else have + counts

    def token_summary(self, mod: str) -> str:
        counts = self.token_counts[mod]
        total = int(counts.sum())
        p = counts[counts > 0] / total
        perplexity = float(np.exp(-(p * np.log(p)).sum()))
        vocab = self.vocab.get(mod)
        used = int((counts > 0).sum())
        usage = f"{used}/{vocab} ids used ({100 * used / vocab:.1f}%)" if vocab else f"{used} distinct ids"
        per_clip = self.tokens_per_clip[mod]
        return (f"{total} tokens, {usage}, perplexity {perplexity:.1f}, "
                f"{np.mean(per_clip):.1f} per clip in {len(per_clip)} clips")

    def render(self) -> str:
        if not self.sharded:
            return self.funnel.render()
        return self._render_corpus() + (f"\n{self.funnel.render()}" if self.funnel is not None else "")

    def _render_corpus(self) -> str:
        lines = [f"corpus {self.out}: {self.shards} shards, {self.bytes / 1e6:.1f} MB",
                 f"clips: {self.clips}   hours: {self.hours:.3f}"]
        lines.append("modalities:")
        lines += [f"  {c:<28} {n}" for c, n in self.combos.most_common()]
        for title, values in (("clip length (s)", self.durations), ("words per clip", self.words)):
            if values:
                v = np.asarray(values, dtype=float)
                lines.append(f"{title}: min {v.min():.2f}  median {np.median(v):.2f}  mean {v.mean():.2f}  "
                             f"max {v.max():.2f}")
        lines.append("tokens:")
        lines += [f"  {mod:<9} {self.token_summary(mod)}" for mod in TOKEN_FIELDS if mod in self.token_counts]
        lines.append("failures by reason (status tables):" + ("" if self.failures else " none"))
        for stage, reasons in self.failures.items():
            lines += [f"  {stage + ':' + r:<36} {n}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])]
        if self.left_out:
            lines.append(f"clips left out of the shards: {sum(self.left_out.values())}")
        return "\n".join(lines)


def corpus_stats(out: str | Path | None, work: str | Path | None = None, progress: bool = True) -> CorpusStats:
    """Read every sample of OUT; failures come from the work folder's status tables when `work` is given,
    else from what index.json recorded when the shards were written. `work` adds the funnel; without OUT
    the funnel is all there is."""
    from tqdm import tqdm

    funnel = None
    if work is not None:
        from mmdata.filters.funnel import funnel as work_funnel
        from mmdata.workdir import WorkDir

        funnel = work_funnel(WorkDir(work), out)
    if out is None:
        return CorpusStats(str(work), funnel=funnel, sharded=False)
    out = as_store(out)
    index = ShardIndex.read(out)
    stats = CorpusStats(out.url, shards=len(index.shards), bytes=index.bytes, vocab=index.vocab_sizes(),
                        failures=index.failures, left_out=index.left_out, funnel=funnel)
    if work is not None:
        from mmdata.shards.parts import FailureTable
        from mmdata.workdir import WorkDir

        stats.failures = FailureTable(WorkDir(work)).counts()
    with tqdm(total=index.samples, desc="stats", unit="sample", disable=not progress) as bar:
        for info in index.shards:
            for _, fields in iter_stored_samples(out, info.name):
                stats.add(fields)
                bar.update(1)
    return stats


# --- html ---------------------------------------------------------------------------------------------

def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plot(name: str, stats: CorpusStats):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
    ax.set_title(_title(name))
    if name.startswith(SCORE_PLOT):
        ax.hist(stats.funnel.scores[name[len(SCORE_PLOT):]], bins=30)
        ax.set_xlabel(name[len(SCORE_PLOT):])
        ax.set_ylabel("clips")
    elif name == "clip_lengths":
        ax.hist(stats.durations, bins=30)
        ax.set_xlabel("seconds")
    elif name == "words_per_clip":
        ax.hist(stats.words, bins=30)
        ax.set_xlabel("words")
    elif name == "modalities":
        combos = stats.combos.most_common()
        ax.barh([c for c, _ in combos], [n for _, n in combos])
        ax.set_xlabel("clips")
    elif name == "failures":
        pairs = sorted(((f"{s}:{r}", n) for s, rs in stats.failures.items() for r, n in rs.items()),
                       key=lambda kv: kv[1])
        ax.barh([p for p, _ in pairs], [n for _, n in pairs])
        ax.set_xlabel("items")
    else:
        counts = stats.token_counts[name]
        ax.stairs(counts, np.arange(len(counts) + 1), fill=True)  # one artist, even for a 50k vocabulary
        ax.set_xlabel(f"token id (vocabulary {stats.vocab.get(name, len(counts))})")
        ax.set_ylabel("count")
    return fig


def _title(name: str) -> str:
    return f"Filter score: {name[len(SCORE_PLOT):]}" if name.startswith(SCORE_PLOT) else PLOTS[name]


def plots_available(stats: CorpusStats) -> list[str]:
    scores = [SCORE_PLOT + m for m, v in (stats.funnel.scores if stats.funnel else {}).items() if v]
    if not stats.sharded:
        return scores
    names = ["clip_lengths", "words_per_clip", "modalities"]
    names += [m for m in TOKEN_FIELDS if m in stats.token_counts]
    return names + (["failures"] if stats.failures else []) + scores


def write_html(stats: CorpusStats, path: str | Path) -> Path:
    """One self-contained page (plots inlined as PNG data URLs), readable in a browser without a server."""
    sections = []
    for name in plots_available(stats):
        title = html.escape(_title(name))
        sections.append(f'<section id="{name}"><h2>{title}</h2>'
                        f'<img alt="{title}" src="data:image/png;base64,{_png(_plot(name, stats))}"></section>')
    if stats.sharded and not stats.failures:
        sections.append(f'<section id="failures"><h2>{PLOTS["failures"]}</h2><p>No failures recorded.</p></section>')
    summary = json.dumps(summary_dict(stats)).replace("</", "<\\/")  # cannot close the script element
    page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>mmdata corpus {html.escape(stats.out)}</title>"
            "<style>body{font-family:sans-serif;max-width:960px;margin:auto}pre{background:#f4f4f4;padding:8px}"
            "</style></head><body>"
            f"<h1>mmdata corpus {html.escape(stats.out)}</h1><pre>{html.escape(stats.render())}</pre>"
            + "".join(sections)
            + f"<script type=\"application/json\" id=\"summary\">{summary}"
            "</script></body></html>\n")
    Path(path).write_text(page, encoding="utf-8")
    return Path(path)


def summary_dict(stats: CorpusStats) -> dict:
    return {"clips": stats.clips, "hours": stats.hours, "shards": stats.shards, "bytes": stats.bytes,
            "modalities": dict(stats.combos), "failures": stats.failures, "left_out": stats.left_out,
            "tokens": {m: int(c.sum()) for m, c in stats.token_counts.items()},
            "funnel": stats.funnel.to_dict() if stats.funnel is not None else None}
