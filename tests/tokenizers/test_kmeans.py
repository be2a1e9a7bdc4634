"""k-means on torch: exact recovery of separated clusters, inertia against scikit-learn and faiss,
determinism, empty clusters."""
import numpy as np
import pytest
import torch

from mmdata.errors import ConfigError
from mmdata.tokenizers.kmeans import KMeans, assign, prepare


def blobs(n_per: int, centres: np.ndarray, std: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + std * rng.standard_normal((n_per, centres.shape[1])) for c in centres])
    y = np.repeat(np.arange(len(centres)), n_per)
    perm = rng.permutation(len(x))
    return x[perm].astype(np.float32), y[perm]


def test_recovers_well_separated_clusters_exactly():
    rng = np.random.default_rng(3)
    centres = rng.uniform(-50, 50, size=(12, 6))
    x, y = blobs(60, centres, std=0.5)
    km = KMeans(12, iters=30, seed=0).fit(x)
    labels = km.predict(x)
    # the partition is the true one: each found cluster is exactly one true cluster
    pairs = set(zip(labels.tolist(), y.tolist()))
    assert len(pairs) == 12 and len({p[0] for p in pairs}) == 12
    # and each centroid sits on its true centre (mean of 60 points with std 0.5: error ~0.06 per dim)
    for lab, true in pairs:
        assert np.abs(km.centroids[lab].numpy() - centres[true]).max() < 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_inertia_agrees_with_sklearn_and_faiss_within_1pct(seed):
    from sklearn.cluster import KMeans as SkKMeans

    faiss = pytest.importorskip("faiss")
    x = np.random.default_rng(seed).standard_normal((4000, 8)).astype(np.float32)
    ours = KMeans(32, iters=50, seed=seed).fit(x).inertia(x)
    sk = SkKMeans(32, n_init=1, random_state=seed, max_iter=50).fit(x).inertia_
    fk = faiss.Kmeans(8, 32, niter=50, seed=seed + 1)
    fk.train(x)
    dist, _ = fk.index.search(x, 1)
    assert abs(ours / sk - 1) < 0.01
    assert abs(ours / float(dist.sum()) - 1) < 0.01


def test_assign_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((1000, 5)).astype(np.float32))
    c = torch.from_numpy(rng.standard_normal((17, 5)).astype(np.float32))
    labels, dist = assign(x, c, batch_rows=64)  # several batches, a ragged last one
    d = torch.cdist(x.double(), c.double()) ** 2
    assert torch.equal(labels, d.argmin(1))
    assert torch.allclose(dist.double(), d.min(1).values, atol=1e-4)


def test_same_seed_same_centroids_bytes():
    x = np.random.default_rng(1).standard_normal((3000, 10)).astype(np.float32)
    a = KMeans(20, iters=8, seed=5).fit(x).centroids.numpy().tobytes()
    b = KMeans(20, iters=8, seed=5).fit(x).centroids.numpy().tobytes()
    c = KMeans(20, iters=8, seed=6).fit(x).centroids.numpy().tobytes()
    assert a == b
    assert a != c


def test_empty_cluster_takes_the_worst_fit_point():
    x = torch.tensor([[0.0], [0.1], [0.2], [10.0]])
    cent = torch.tensor([[0.1], [100.0]])  # the second centre wins no point
    km = KMeans(2, iters=1)
    labels, dist = assign(x, cent)
    new = km._update(prepare(x)[0], labels, dist, cent, rows=16)
    # cluster 0 gets the mean of all points; the empty cluster 1 moves to the farthest point, 10.0
    assert new[1, 0].item() == 10.0
    assert new[0, 0].item() == pytest.approx(float(x.mean()))


def test_fewer_distinct_points_than_k_gives_finite_centroids():
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], np.float32), 20, axis=0)
    km = KMeans(5, iters=5, seed=0).fit(x)
    assert torch.isfinite(km.centroids).all()
    assert km.inertia(x) == pytest.approx(0.0, abs=1e-6)


def test_more_clusters_than_points_is_a_config_error():
    with pytest.raises(ConfigError, match="k"):
        KMeans(10).fit(np.zeros((5, 2), np.float32))


def test_iterations_lower_the_objective():
    x = np.random.default_rng(2).standard_normal((2000, 4)).astype(np.float32)
    km = KMeans(16, iters=10, seed=0).fit(x)
    obj = km.objective
    assert len(obj) == 10 and km.n_iter == 10
    assert all(b <= a + 1e-3 for a, b in zip(obj, obj[1:]))  # Lloyd never increases the objective
