"""Benchmark: parsing a long YouTube auto-caption WebVTT with mmdata vs webvtt-py reading the same file,
in one run.

webvtt-py only reads the cues (text with markup, start, end); mmdata also removes the rolling repeats
and hold cues and yields each word once with its start and end, so it does more work per file. The file
is generated (mmdata.testing.captions.random_lines + rolling_vtt: two-line rolling cues, 10 ms hold
cues, word timing tags inside colour spans, a Style block). Each side runs `--repeat` times, interleaved,
and the best time counts (the machine is shared). Prints the ratio mmdata / webvtt-py (target <= 1.0).

    .venv/bin/python bench/align.py                 # 40000 words (about 4 hours of speech)
    .venv/bin/python bench/align.py --words 5000 --repeat 5
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmdata.testing.captions import expected_words, random_lines, rolling_vtt  # noqa: E402
from mmdata.transcripts.formats import parse_file  # noqa: E402


def time_mmdata(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    tr = parse_file(path, origin="auto")
    return time.perf_counter() - t0, len(tr.words)


def time_webvtt(path: Path) -> tuple[float, int]:
    import webvtt

    t0 = time.perf_counter()
    captions = webvtt.read(str(path)).captions
    return time.perf_counter() - t0, len(captions)


def main() -> float:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=40000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    lines, end_ms = random_lines(args.words, args.seed)
    with tempfile.TemporaryDirectory(prefix="mmdata-bench-align-") as d:
        path = Path(d) / "captions.en.auto.vtt"
        path.write_text(rolling_vtt(lines, end_ms, colour=True))
        mb = path.stat().st_size / 1e6
        print(f"generated {path.name}: {mb:.1f} MB, {len(lines)} lines of new text, {args.words} words, "
              f"{end_ms / 3.6e6:.1f} h")
        best_m = best_w = float("inf")
        n_words = n_cues = 0
        for _ in range(args.repeat):
            tm, n_words = time_mmdata(path)
            tw, n_cues = time_webvtt(path)
            best_m, best_w = min(best_m, tm), min(best_w, tw)
        # the comparison only means something if mmdata's output is right
        assert [w.w for w in parse_file(path, origin="auto").words] == [w.w for w in expected_words(lines, end_ms)]
    print(f"{'':<10}{'best s':>9}{'MB/s':>9}  output")
    print(f"{'mmdata':<10}{best_m:>9.3f}{mb / best_m:>9.1f}  {n_words} words (each once, with start and end)")
    print(f"{'webvtt-py':<10}{best_w:>9.3f}{mb / best_w:>9.1f}  {n_cues} cues (rolling repeats included)")
    ratio = best_m / best_w
    print(f"ratio mmdata/webvtt-py: {ratio:.2f}   target <= 1.0")
    return ratio


if __name__ == "__main__":
    main()
