"""A real two-node Ray cluster on this machine for tests: `ray start --head` plus a second `ray start
--address`, both with token authentication (Ray 2.60), stopped by killing exactly the processes we started.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_sessions(sessions: set[int]) -> list[int]:
    """The live processes (not zombies) whose session is one of `sessions` (from /proc)."""
    from mmdata.testing.chaos import process_stats

    return [p for p, fields in process_stats() if fields[0] != "Z" and int(fields[3]) in sessions]


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


class LocalRayCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 1, tmp_dir: str | None = None, gpus_per_node: int = 0,
                 node_env: list[dict[str, str]] | None = None):
        # gpus_per_node > 0 declares logical GPUs: Ray schedules GPU actors on them as if they existed (and
        # sets CUDA_VISIBLE_DEVICES for them); torch in those actors still sees no GPU on a CPU machine
        self.nodes, self.cpus, self.gpus = nodes, cpus_per_node, gpus_per_node
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "RAY_AUTH_MODE": "token"}
        self.tmp_dir = tmp_dir
        # per node, extra environment its workers inherit (e.g. MMDATA_SCRATCH: each "machine" its own disk)
        self.node_env = node_env or [{} for _ in range(nodes)]

    def _start(self, args: list[str]) -> None:
        # --block keeps `ray start` in the foreground as the parent of the node's processes; its own
        # session lets us stop exactly this node (and nothing else on the machine) with one killpg.
        proc = subprocess.Popen([_ray_bin(), "start", "--block", f"--num-cpus={self.cpus}", f"--num-gpus={self.gpus}",
                                 "--disable-usage-stats"] + args, env={**self.env, **self.node_env[len(self.procs)]},
                                start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)

    def start(self, timeout_s: float = 90.0) -> "LocalRayCluster":
        subprocess.run([_ray_bin(), "get-auth-token", "--generate"], env=self.env, capture_output=True, check=True)
        head = ["--head", f"--port={self.port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false"]
        if self.tmp_dir:
            head.append(f"--temp-dir={self.tmp_dir}")
        self._start(head)
        self._wait_nodes(1, timeout_s)
        for _ in range(self.nodes - 1):
            self._start([f"--address={self.address}", "--node-ip-address=127.0.0.1"])
        self._wait_nodes(self.nodes, timeout_s)
        return self

    def _wait_nodes(self, n: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError("a `ray start` process exited early")
            out = subprocess.run([sys.executable, "-c", code, self.address], env=self.env, capture_output=True,
                                 text=True, timeout=60)
            if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= n:
                return
            time.sleep(1.0)
        raise TimeoutError(f"Ray cluster at {self.address} did not reach {n} nodes in {timeout_s:g} s")

    def stop(self, grace_s: float = 2.0) -> None:
        """SIGTERM each node's session, then, after `grace_s`, SIGKILL what is left of them. (Ray shuts a node
        down gracefully in about 20 s, and a test has nothing left to save in it: each test's cluster cost 30 s
        more to stop than to start.) Only the sessions `ray start` got from us are touched."""
        sessions = {p.pid for p in self.procs}
        for sid in sessions:
            try:
                os.killpg(sid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while _in_sessions(sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in _in_sessions(sessions):  # a process may have left its process group, never its session
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait()

    def __enter__(self) -> "LocalRayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
