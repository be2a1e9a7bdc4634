"""A worker's large buffers go back to the system when freed: glibc's mmap threshold is fixed in every worker
(pools.fix_mmap_threshold), so it cannot rise after a large block is freed and leave the next ones in the
heap, kept and fragmented (a worker running frames, audio and quantize in turn grew with the corpus)."""
from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from mmdata.pipelines.base import Stage
from mmdata.pipelines.runner import RunnerConfig, run_stage
from mmdata.records import Clip
from mmdata.testing.workdirs import make_work


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc():
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc 2.33 or later (no mallinfo2): the threshold is glibc's")
    libc.mallinfo2.restype = _MallInfo2
    return libc


def second_block_is_mapped() -> bool:
    """Free a 16 MB block, then take an 8 MB one: is the 8 MB one a mapping of its own (returned to the system
    when freed), or carved from the heap (glibc raised its threshold to 16 MB when the first was freed)?"""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(libc.malloc(16 << 20))
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(8 << 20)
    mapped = libc.mallinfo2().hblkhd - before >= 8 << 20
    libc.free(block)
    return mapped


class MallocProbe(Stage):
    name = "probe"

    def process(self, item, out_dir, work):
        return {"mapped": second_block_is_mapped()}


def test_a_plain_process_keeps_large_blocks_in_its_heap_after_one_is_freed():
    """What the fix is for: glibc's own threshold rises (this is what the probe below tells apart)."""
    _libc()
    code = "from tests.pipelines.test_worker_memory import second_block_is_mapped as f; print(f())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_worker_maps_its_large_blocks(tmp_path):
    _libc()
    work = make_work(tmp_path, [Clip(f"v{i}_0_1000", f"v{i}", "http://h/x.mp4", 0.0, 1.0, chunk=i) for i in range(2)])
    run_stage(MallocProbe(), work, RunnerConfig(progress=False, workers=2))
    assert [work.meta("probe", f"v{i}_0_1000") for i in range(2)] == [{"mapped": True}] * 2
