"""Each masking scheme: rates, shapes, spans and the 80/10/10 split, on fixed seeds."""
import numpy as np

from mmdata.train import masking


def test_mlm_rate_and_80_10_10_split():
    rng = np.random.default_rng(0)
    vocab, mask_id = 1000, 1001
    kinds = np.zeros(3)
    n_targets = n_tokens = 0
    for _ in range(400):
        tok = rng.integers(0, vocab, size=50)
        inp, tgt = masking.mask_language(tok, rng, vocab, mask_id, prob=0.3)
        assert tgt.sum() == 15  # exact count: round(0.3 * 50)
        assert np.array_equal(inp[~tgt], tok[~tgt])  # non-targets untouched
        masked = inp[tgt] == mask_id
        kept = inp[tgt] == tok[tgt]
        rand = ~masked & ~kept
        kinds += [masked.sum(), rand.sum(), kept.sum()]
        assert ((inp[tgt][rand] >= 0) & (inp[tgt][rand] < vocab)).all()  # random ids stay in the vocabulary
        n_targets += tgt.sum()
        n_tokens += len(tok)
    assert n_targets / n_tokens == 0.3
    share = kinds / kinds.sum()  # 6000 targets: 3 sigma of a 10% share is ~1.2%
    # a random replacement equal to the original (p = 1/1000) counts as kept: negligible here
    assert abs(share[0] - 0.8) < 0.02 and abs(share[1] - 0.1) < 0.015 and abs(share[2] - 0.1) < 0.015


def test_mlm_short_text_still_gets_a_target():
    rng = np.random.default_rng(1)
    inp, tgt = masking.mask_language(np.array([5, 6]), rng, 10, 11, prob=0.3)
    assert tgt.sum() == 1
    assert masking.mask_language(np.array([], dtype=np.int64), rng, 10, 11)[1].sum() == 0


def test_tube_mask_covers_half_the_cells_in_every_frame():
    rng = np.random.default_rng(2)
    for _ in range(50):
        m = masking.tube_mask((8, 14, 14), rng, ratio=0.5)
        assert m.shape == (8, 14, 14)
        assert (m.sum(axis=(1, 2)) == 98).all()  # 50% of 196 positions, in every frame
        assert (m == m[0]).all()  # the same cells in every frame: tubes through time


def test_tube_mask_run_of_frames():
    rng = np.random.default_rng(3)
    starts = set()
    for _ in range(200):
        m = masking.tube_mask((10, 6, 6), rng, ratio=0.5, tube_frames=4)
        frames = np.flatnonzero(m.any(axis=(1, 2)))
        assert len(frames) == 4 and (np.diff(frames) == 1).all()  # one run of 4 consecutive frames
        assert (m[frames] == m[frames[0]]).all() and m[frames[0]].sum() == 18
        starts.add(int(frames[0]))
    assert starts == set(range(7))  # every start position 0..10-4 occurs


def test_span_mask_starts_and_lengths():
    rng = np.random.default_rng(4)
    n, p, span = 500, 0.08, 10
    covered = []
    for _ in range(200):
        m = masking.span_mask(n, rng, prob=p, span=span)
        runs = _runs(m)
        assert all(length >= span for _, length in runs)  # spans never shorter than l (overlaps merge)
        assert all(start + length <= n for start, length in runs)
        # 40 starts of 10 units: the union is between one span per run and 400 positions
        assert len(runs) <= 40 and m.sum() <= 400 and m.sum() >= span * len(runs)
        covered.append(m.mean())
    # 40 distinct starts among 491: expected coverage 1 - P(no start in the 10 before) ~ 0.56
    expected = 1 - np.prod([(491 - 40 - i) / (491 - i) for i in range(10)])
    assert abs(np.mean(covered) - expected) < 0.02


def test_span_mask_short_sequences():
    rng = np.random.default_rng(5)
    assert masking.span_mask(0, rng).sum() == 0
    assert masking.span_mask(4, rng, span=10).all()  # one span covers it all
    m = masking.span_mask(12, rng, prob=0.08, span=10)
    assert m.sum() == 10 and len(_runs(m)) == 1  # round(0.96) = 1 start


def test_same_seed_same_masks():
    a = masking.span_mask(300, np.random.default_rng(7))
    b = masking.span_mask(300, np.random.default_rng(7))
    assert np.array_equal(a, b)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist()))
