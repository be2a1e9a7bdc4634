import pytest
import torch

from mmdata.testing.synthetic import write_shards
from mmdata.train.config import resolve_config

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> str:
    """Synthetic token shards (one to three modalities per sample): 4 shards of 64 samples."""
    return write_shards(tmp_path_factory.mktemp("corpus"), 256, shard_size=64, seed=0)


@pytest.fixture(scope="session")
def heldout(tmp_path_factory) -> str:
    """64 tri-modal held-out clips, each (colour, shape) exactly once."""
    return write_shards(tmp_path_factory.mktemp("heldout"), 64, shard_size=64, seed=99, prefix="held",
                        all_combinations=True, tri_modal_only=True)


@pytest.fixture
def tiny(corpus, tmp_path):
    """A resolved tiny config over the synthetic corpus; keyword overrides go through the CLI layer."""
    def make(**over):
        cli = {"preset": "tiny", "data": [corpus], "out": str(tmp_path / "run"), "batch_size": 8,
               "steps": 4, "log_every": 1, "ckpt_every": 100}
        cli.update(over)
        return resolve_config(cli)
    return make
