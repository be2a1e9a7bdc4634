import pytest

from mmdata.testing.speech import spoken_corpus

WORDS = ["apple", "river", "mountain", "sugar", "window", "happy", "yellow", "bottle"]


@pytest.fixture(scope="session")
def espeak_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("espeak")


@pytest.fixture(scope="session")
def spoken(espeak_cache):
    """8 words, each said by espeak-ng at 3 speeds, separated by 0.25 s pauses of low noise (~16 s)."""
    return spoken_corpus(WORDS, speeds=(140, 175, 210), cache=espeak_cache)
