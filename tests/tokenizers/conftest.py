import pytest
import torch

from mmdata.testing.speech import spoken_corpus

WORDS = ["apple", "river", "mountain", "sugar", "window", "happy", "yellow", "bottle"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The CI machine has 2 cores shared with other jobs: keep torch's matmuls on one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def espeak_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("espeak")


@pytest.fixture(scope="session")
def spoken(espeak_cache):
    """8 words, each said by espeak-ng at 3 speeds, separated by 0.25 s pauses of low noise (~16 s)."""
    return spoken_corpus(WORDS, speeds=(140, 175, 210), cache=espeak_cache)
