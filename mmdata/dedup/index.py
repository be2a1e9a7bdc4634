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
(the part that grows, towards N^2 at 1/15 of a brute-force comparison's count). Uniform hashes assumed; real
pHashes fill some buckets more.

The lookups are numpy operations over all 4,384 probes at once, not a dict lookup each (that Python cost was
the index's, 1.5-2x slower than numpy's brute force at 10,000 clips): the buckets are arrays (`_Table`), a
bulk in key order with a small tail for the newest clips. bench/dedup.py (best of 3, a shared 2-core machine):
1,000 -> 10,000 clips 0.120 -> 1.68 s, 14.0x for 10x the clips (the dict index, same machine and day: 0.41 ->
10.0 s, 24.3x), 0.36 x brute force's time at 10,000; 2,000 -> 20,000 17.6x, 0.23 x brute force. What grows is
the bucket entries, each a cache miss in the 8 MB bucket table: about 5 us per clip per 1,000 kept clips on a
base of 120 us.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from mmdata.config import check

BANDS, BAND_BITS = 4, 16
_POSITIONS = 8  # frame positions with buckets of their own; position p shares p % 8's (told apart by p)
_SLOTS = _POSITIONS * BANDS << BAND_BITS
_IN_BULK, _IN_TAIL = 1, 2
_POS_MASK = (1 << 32) - 1
_SHIFTS = np.arange(BANDS, dtype=np.uint64) * np.uint64(BAND_BITS)
_LOW64 = (1 << 64) - 1
_TAIL_SIZE = 16384  # entries the tail takes before they move into the bulk (512 clips of 8 frames)


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


def _masks(radius: int) -> np.ndarray:
    """Every 16-bit value within `radius` bits of 0: a band is probed under its own value xor each."""
    return np.array([sum(1 << i for i in bits) for r in range(radius + 1)
                     for bits in itertools.combinations(range(BAND_BITS), r)], np.int64)


class _Table:
    """Index entries bucketed by key (see `_keys`); an entry is a kept clip's ref and the frame position the key
    came from, as one number (ref << 32 | position) so that a lookup gathers one array.

    A clip's thousands of lookups are a few numpy operations over arrays, not a dict lookup each: the bulk of the
    entries lie bucket after bucket in order added (bucket k at `start[k]:start[k + 1]`), and `used` (a byte per
    bucket) leaves only the probes that land somewhere. The newest entries are in a tail (a dict from key to
    entries: few probes land there), moved into the bulk every `_TAIL_SIZE` entries. A move costs the bulk's
    size and the 2M-bucket table's, a few ms at 10,000 clips: small beside the lookups (0.1 s of 1.7 s)."""

    def __init__(self):
        self.start = np.zeros(_SLOTS + 1, np.int32)  # 2^31 entries: 67 million clips of 8 frames
        self.entries = np.zeros(0, np.int64)
        self.used = np.zeros(_SLOTS, np.uint8)  # per bucket: _IN_BULK if it has bulk entries, | _IN_TAIL
        self.tail_keys, self.tail_entries = np.zeros(_TAIL_SIZE, np.int64), np.zeros(_TAIL_SIZE, np.int64)
        self.tail_size = 0
        self.tail: dict[int, list[int]] = {}  # key -> its entries' indices in tail_entries

    def add(self, keys: np.ndarray, entries: np.ndarray) -> None:
        at, end = self.tail_size, self.tail_size + keys.size
        if end > self.tail_keys.size:  # a clip of over _TAIL_SIZE / 4 frames
            self.tail_keys, self.tail_entries = np.resize(self.tail_keys, end), np.resize(self.tail_entries, end)
        self.tail_keys[at:end], self.tail_entries[at:end] = keys, entries
        for i, k in enumerate(keys.tolist(), at):
            self.tail.setdefault(k, []).append(i)
        self.used[keys] |= _IN_TAIL
        self.tail_size = end
        if end >= _TAIL_SIZE:
            self._merge()

    def _merge(self) -> None:
        order = np.argsort(self.tail_keys[:self.tail_size], kind="stable")
        keys = self.tail_keys[order]
        self.entries = np.insert(self.entries, self.start[keys + 1], self.tail_entries[order])  # after the older
        # bucket k ends later by the count of new keys <= k: 0 up to the first new key, 1 up to the second...
        self.start[1:] += np.repeat(np.arange(keys.size + 1, dtype=np.int32), np.diff(keys, prepend=0, append=_SLOTS))
        self.used[keys] = _IN_BULK
        self.tail, self.tail_size = {}, 0

    def lookup(self, probes: np.ndarray, group: int) -> np.ndarray:
        """The entries under `probes`, keys of frame positions in position group `group` (positions
        group * _POSITIONS up to the next group's), from those same positions."""
        used = self.used[probes]
        hit = used != 0
        probes, used = probes[hit], used[hit]
        bulk = probes[used & _IN_BULK != 0]
        lo = self.start[bulk]
        n = self.start[bulk + 1] - lo
        found = self.entries[np.arange(n.sum()) + np.repeat(lo - (np.cumsum(n) - n), n)]  # bucket after bucket
        pos = np.repeat(group * _POSITIONS + (bulk >> BAND_BITS) // BANDS, n)
        found = found[found & _POS_MASK == pos]  # a bucket has every group's position of its slot
        if self.tail_size:
            tail = self.tail_entries[[i for k in probes[used & _IN_TAIL != 0].tolist() for i in self.tail[k]]]
            found = np.concatenate([found, tail[(tail & _POS_MASK) // _POSITIONS == group]])
        return found


@dataclass
class Deduper:
    """The clips kept so far, and `judge` for the next one. Refs are the kept clips' order."""
    cfg: DedupConfig
    keys: list[str] = field(default_factory=list)
    near: list[tuple[int | None, ...]] = field(default_factory=list)
    masks: list[int] = field(default_factory=list)  # per kept clip: its frame positions with a hash
    exact: dict[str, int] = field(default_factory=dict)
    compared: int = 0  # near comparisons made (the work that must not grow as N^2)

    def __post_init__(self):
        self._masks = _masks(self.cfg.max_distance // BANDS)
        self._table = _Table()
        self._last: tuple = (None, None)
        self._low = np.zeros(1024, np.uint64)  # masks' positions 0-63, for counting shared ones vectorised

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
        mask = _present(sig.near)
        self.masks.append(mask)
        if ref == len(self._low):
            self._low = np.concatenate([self._low, np.zeros_like(self._low)])
        self._low[ref] = mask & _LOW64
        if sig.exact is not None:
            self.exact.setdefault(sig.exact, ref)
        keys, pos = self._keys(sig.near)
        if pos.size:
            self._table.add(keys.ravel(), np.repeat(pos | ref << 32, BANDS))

    def _keys(self, hashes: tuple[int | None, ...]) -> tuple[np.ndarray, np.ndarray]:
        if self._last[0] is not hashes:  # a clip kept is added just after it was judged: its keys are known
            self._last = (hashes, _keys(hashes))
        return self._last[1]

    def _candidates(self, hashes: tuple[int | None, ...]) -> list[int]:
        """Kept clips, earliest first, with a band within reach at as many frame positions as a match needs:
        half of the positions both clips have a hash at (rounded up)."""
        keys, pos = self._keys(hashes)
        if not pos.size or not self.keys:
            return []
        entries = []
        for group in range(int(pos[-1]) // _POSITIONS + 1):  # one group unless a clip has over 8 frames
            mine = pos // _POSITIONS == group
            probes = keys[mine][:, :, None] ^ self._masks  # within reach: the value's bits, not the slot's
            entries.append(self._table.lookup(probes.ravel(), group))
        pairs = np.sort(np.concatenate(entries))  # ref << 32 | position
        if not pairs.size:
            return []
        pairs = pairs[_firsts(pairs)]  # (clip, position) once, whichever bands found it
        first = np.flatnonzero(_firsts(pairs >> 32))
        found, hits = pairs[first] >> 32, np.append(first[1:], pairs.size) - first  # the positions each was found at
        mine = _present(hashes)
        if mine <= _LOW64:  # no position past 63: the low 64 bits of the kept masks are all that is shared
            shared = np.bitwise_count(self._low[found] & np.uint64(mine))
        else:
            shared = np.array([(self.masks[r] & mine).bit_count() for r in found.tolist()])
        return found[2 * hits >= shared].tolist()


def _keys(hashes: tuple[int | None, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The index keys of a clip's hashed frames, (frames, BANDS): the position's slot, the band's number and
    its value; and the frames' positions."""
    pos = np.array([i for i, h in enumerate(hashes) if h is not None], np.int64)
    h = np.array([hashes[i] for i in pos.tolist()], np.uint64).reshape(-1, 1)
    values = ((h >> _SHIFTS) & np.uint64(0xFFFF)).astype(np.int64)
    slot = (pos[:, None] % _POSITIONS * BANDS + np.arange(BANDS)) << BAND_BITS
    return slot | values, pos


def _firsts(a: np.ndarray) -> np.ndarray:
    """Where a sorted array's runs of equal values start."""
    return np.concatenate(([True], a[1:] != a[:-1]))


def _present(hashes: tuple[int | None, ...]) -> int:
    """The frame positions that have a hash, as a bit mask."""
    return sum(1 << i for i, h in enumerate(hashes) if h is not None)
