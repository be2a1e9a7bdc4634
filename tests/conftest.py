import os
from pathlib import Path

import pytest

from mmdata.testing.media import REALMEDIA

# Keep torch from spawning more threads than the 2-core CI machine has.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def realmedia() -> Path:
    if not REALMEDIA.is_dir():
        pytest.skip(f"real media folder {REALMEDIA} is absent (it lives in ../shared/realmedia)")
    return REALMEDIA
