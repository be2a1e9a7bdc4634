"""Chaos for tests: SIGKILL a run's worker processes at seeded random moments, once per stage while that stage
has work in flight, and find those processes among the descendants of a process the test started (the
`mmdata run` driver), never by name across the machine.

Which stage is in flight is read from the work store: an item being processed has a marker
`WORK/<stage>/.markers/inflight/<key>`, and a shard being written is `OUT/.<name>.tar.tmp`.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


def process_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ...) of every
    process on this machine."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        yield int(entry), stat.rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    return [p for p, fields in process_stats() if int(fields[1]) == pid]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def local_workers(driver: int) -> list[int]:
    """The local executor's worker processes of a driver: the children of its multiprocessing fork server
    (their own children, ffmpeg and the like, are left alone: killing a tool is an item's error, not chaos)."""
    servers = [p for p in children(driver) if "forkserver" in cmdline(p)]
    return [w for s in servers for w in children(s)]


def _ray_titled(driver: int, keep: Callable[[str], bool]) -> list[int]:
    """The `ray::` processes among a driver's descendants (under the embedded Ray it started) whose title
    `keep` accepts."""
    found, todo = [], children(driver)
    while todo:
        p = todo.pop()
        title = cmdline(p)
        if title.startswith("ray::"):
            if keep(title):
                found.append(p)
        else:
            todo += children(p)
    return found


def ray_workers(driver: int) -> list[int]:
    """The Ray worker processes (actors, and idle workers waiting for one) of a driver that started an
    embedded Ray. Not the node's agents, also titled `ray::`: the raylet goes down with them, and with it
    the node (that is `ray_agents`, a node dying, not a worker)."""
    from ray._private.ray_constants import AGENT_PROCESS_LIST

    return _ray_titled(driver, lambda t: not t.startswith(tuple(AGENT_PROCESS_LIST)))


def ray_agents(driver: int) -> list[int]:
    """The agents of the node of a driver's embedded Ray: killing one takes the raylet, the node, down."""
    from ray._private.ray_constants import AGENT_PROCESS_LIST

    return _ray_titled(driver, lambda t: t.startswith(tuple(AGENT_PROCESS_LIST)))


def in_flight(work: Path, out: Path, stages: tuple[str, ...]) -> list[str]:
    """The stages with work in flight now, as the store shows it."""
    busy = [s for s in stages if s != "shard" and any((work / s / ".markers" / "inflight").glob("*"))]
    if "shard" in stages and out.exists() and any(out.glob(".*.tar.tmp")):
        busy.append("shard")
    return busy


@dataclass
class Chaos:
    """A thread that, for each stage of `stages` not hit yet, waits for it to be in flight, then after a
    seeded random delay SIGKILLs every process `workers()` returns. `hit`: stage -> pids killed."""
    workers: Callable[[], list[int]]
    work: Path
    out: Path
    stages: tuple[str, ...]
    seed: int = 0
    max_delay_s: float = 0.15
    hit: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)

    def __enter__(self) -> "Chaos":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            todo = [s for s in in_flight(self.work, self.out, self.stages) if s not in self.hit]
            if todo:
                stage = todo[0]
                self._stop.wait(self._rng.uniform(0.0, self.max_delay_s))
                pids = self.workers()
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                if pids:
                    self.hit[stage] = pids
            self._stop.wait(0.01)


def kill_after(proc, when: Callable[[], bool], seed: int, max_delay_s: float = 0.3, poll_s: float = 0.01,
               timeout_s: float = 300.0) -> bool:
    """SIGKILL `proc` (a Popen) once `when()` holds, after a seeded random delay; False when it ended first."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and not when() and time.monotonic() < deadline:
        time.sleep(poll_s)
    time.sleep(random.Random(seed).uniform(0.0, max_delay_s))
    if proc.poll() is not None:
        return False
    proc.kill()
    proc.wait()
    return True
