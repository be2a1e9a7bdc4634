import os
import sys
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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The CI machine has 2 cores shared with other jobs: keep torch's matmuls on one (only where a test
    module already imported torch, so tests that never touch it do not pay for importing it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def s3():
    """A real S3-compatible server (moto) on 127.0.0.1 for the session; this process and the processes it
    starts reach it through AWS_ENDPOINT_URL and test credentials."""
    from mmdata.testing.s3server import S3Server

    server = S3Server().start()
    saved = {k: os.environ.get(k) for k in server.client_env()}
    os.environ.update(server.client_env())
    yield server
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
