"""The de-duplication rule and the index that keeps it near linear.

Clips are judged one at a time in manifest order (chunk number, then row); each is compared with the clips
kept before it, and is a duplicate of the earliest of them it matches:

    exact  the same exact signature (a dict lookup);
    near   the same number of sampled frames (one more or less: a re-encode may end a frame earlier), and
           a median Hamming distance over the aligned non-blank frame pairs of at most `max_distance` bits.

Comparing with every earlier clip grows as N^2. The index splits each 64-bit frame hash into 4 bands of 16
bits, keyed by the frame's position in the clip (pairs are aligned by position); if two hashes differ in at
most k bits, one band differs in at most k // 4 of them (pigeonhole). So a frame is looked up in each band
under every value within k // 4 bits of its own (137 values at k = 10), and a clip found at half of the
positions the two clips share (a median within k means half the pairs are within k) is compared: every match
is among them, and an unrelated clip almost never is. Per clip of 8 frames: 4,384 lookups whatever the corpus
(the linear part), and the entries of the buckets they land in, about N / 65,536 each, so 0.07 x N entries
(the part that grows, towards N^2 at 1/15 of a brute-force comparison's count). bench/dedup.py measured 15.6x
for 10x the clips at 1,000 -> 10,000: the growing part already shows. Uniform hashes assumed; real pHashes
fill some buckets more.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from mmdata.config import check

BANDS, BAND_BITS = 4, 16


@dataclass
class DedupConfig:
    exact: bool = True  # the same packets and window (a re-muxed copy)
    near: bool = True  # near-identical sampled frames (a re-encode, a crop of a few pixels)
    max_distance: int = 10  # near: the most bits (of 64) the median frame pair may differ in
    black_range: float = 0.06  # a frame whose luma spread is under this is blank: not hashed (as the filters)
    timeout_s: float = 60.0  # for each ffmpeg run that hashes a source's packets, plus its media's length

    def __post_init__(self):
        check(0 <= self.max_distance <= 31, "DedupConfig", "max_distance", self.max_distance,
              "bits of 64, 0 to 31 (another video differs in about 32)")
        check(0 < self.black_range < 1, "DedupConfig", "black_range", self.black_range, "0 < x < 1")
        check(self.timeout_s > 0, "DedupConfig", "timeout_s", self.timeout_s, "> 0")


@dataclass(frozen=True)
class Signature:
    key: str
    exact: str | None
    near: tuple[int | None, ...]  # one pHash per sampled frame, None for a blank one

    @classmethod
    def from_meta(cls, key: str, meta: dict) -> "Signature":
        return cls(key, meta.get("exact"), tuple(None if h is None else int(h, 16) for h in meta.get("near") or ()))


@dataclass(frozen=True)
class Match:
    key: str  # the kept clip this one duplicates
    kind: str  # exact | near
    distance: int = 0  # near: the median Hamming distance
    pairs: int = 0  # near: the frame pairs compared

    def detail(self, max_distance: int) -> str:
        if self.kind == "exact":
            return f"exact copy of {self.key}: the same video and audio packets, the same window"
        return (f"near copy of {self.key}: median Hamming distance {self.distance} of 64 bits over {self.pairs} "
                f"sampled frame pairs (max_distance {max_distance})")


def near_distance(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> tuple[int, int] | None:
    """(median distance, pairs) of two clips' aligned frames, None when they cannot be compared."""
    if abs(len(a) - len(b)) > 1:
        return None
    d = sorted((x ^ y).bit_count() for x, y in zip(a, b) if x is not None and y is not None)
    return (d[(len(d) - 1) // 2], len(d)) if d else None  # the lower median: a tie counts as the closer


def _masks(radius: int) -> list[int]:
    return [sum(1 << i for i in bits) for r in range(radius + 1) for bits in itertools.combinations(range(BAND_BITS), r)]


@dataclass
class Deduper:
    """The clips kept so far, and `judge` for the next one. Refs are the kept clips' order."""
    cfg: DedupConfig
    keys: list[str] = field(default_factory=list)
    near: list[tuple[int | None, ...]] = field(default_factory=list)
    masks: list[int] = field(default_factory=list)  # per kept clip: its frame positions with a hash
    exact: dict[str, int] = field(default_factory=dict)
    bands: list[dict[int, list[int]]] = field(default_factory=lambda: [{} for _ in range(BANDS)])
    compared: int = 0  # near comparisons made (the work that must not grow as N^2)

    def __post_init__(self):
        self._masks = _masks(self.cfg.max_distance // BANDS)

    def __len__(self) -> int:
        return len(self.keys)

    def judge(self, sig: Signature) -> Match | None:
        """The earliest kept clip `sig` duplicates, or None."""
        if self.cfg.exact and sig.exact is not None and sig.exact in self.exact:
            return Match(self.keys[self.exact[sig.exact]], "exact")
        if not self.cfg.near:
            return None
        for ref in self._candidates(sig.near):
            self.compared += 1
            found = near_distance(sig.near, self.near[ref])
            if found is not None and found[0] <= self.cfg.max_distance:
                return Match(self.keys[ref], "near", *found)
        return None

    def add(self, sig: Signature) -> None:
        """Keep `sig`: later clips are judged against it."""
        ref = len(self.keys)
        self.keys.append(sig.key)
        self.near.append(sig.near)
        self.masks.append(_present(sig.near))
        if sig.exact is not None:
            self.exact.setdefault(sig.exact, ref)
        for i, h in enumerate(sig.near):
            if h is not None:
                for j, band in enumerate(self.bands):
                    band.setdefault(((h >> (BAND_BITS * j)) & 0xFFFF) | (i << BAND_BITS), []).append(ref)

    def _candidates(self, hashes: tuple[int | None, ...]) -> list[int]:
        """Kept clips, earliest first, with a band within reach at as many frame positions as a match needs:
        half of the positions both clips have a hash at (rounded up)."""
        hits: dict[int, set[int]] = {}
        for i, h in enumerate(hashes):
            if h is None:
                continue
            for j, band in enumerate(self.bands):
                v = ((h >> (BAND_BITS * j)) & 0xFFFF) | (i << BAND_BITS)
                for m in self._masks:
                    for ref in band.get(v ^ m, ()):
                        hits.setdefault(ref, set()).add(i)
        mine = _present(hashes)
        return sorted(ref for ref, pos in hits.items() if 2 * len(pos) >= (self.masks[ref] & mine).bit_count())


def _present(hashes: tuple[int | None, ...]) -> int:
    """The frame positions that have a hash, as a bit mask."""
    return sum(1 << i for i, h in enumerate(hashes) if h is not None)
