"""`mmdata doctor` and the one-line errors for a broken environment, run as a user would: the real CLI in
a subprocess. Broken environments are made for real where that is possible (a PATH without ffmpeg); a
torch/torchaudio ABI mismatch cannot be installed here without a second 5 GB environment, so a stand-in
`torchaudio` package that fails exactly as the mismatched wheel does (same exception, same message), with
its own dist-info saying 2.11.1, is put first on PYTHONPATH."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmdata import doctor

MISMATCH = ("/venv/lib/python3.11/site-packages/torchaudio/lib/libtorchaudio.so: undefined symbol: "
            "torch_exception_get_what_without_backtrace")


def mmdata(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmdata.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def broken_package(root: Path, name: str, raise_line: str, version: str) -> Path:
    """A package `name` that raises at import, with dist-info claiming `version`."""
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(raise_line + "\n")
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def by_name(checks: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for c in checks}


@pytest.mark.slow
def test_doctor_passes_on_this_machine_with_ray():
    res = mmdata("doctor", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    checks = by_name(json.loads(res.stdout))
    assert {n for n, c in checks.items() if c["status"] != "ok"} == set(), checks
    assert "torch 2.11.0" in checks["torch"]["detail"] and "torchaudio 2.11.0" in checks["torch"]["detail"]
    assert "av1" in checks["codecs"]["detail"] and "hevc" in checks["codecs"]["detail"]
    assert "10 frames, 64x48" in checks["decord"]["detail"]
    assert "1 node(s)" in checks["ray"]["detail"] and "0 GPUs" in checks["ray"]["detail"]


def test_doctor_without_ffmpeg_on_path_fails_naming_ffmpeg(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()  # a PATH with nothing on it: no ffmpeg, ffprobe or espeak-ng
    res = mmdata("doctor", "--skip", "ray", env={"PATH": str(bare)})
    assert res.returncode == 1, res.stdout
    lines = res.stdout.splitlines()
    assert any(ln.split()[:2] == ["FAIL", "ffmpeg"] and "not on PATH" in ln for ln in lines), res.stdout
    assert "fix: install it: apt-get install -y ffmpeg" in res.stdout
    assert any(ln.split()[:2] == ["skip", "decord"] for ln in lines)
    assert res.stdout.rstrip().endswith("mmdata will not run correctly until the failures are fixed")


def test_doctor_names_a_torch_torchaudio_mismatch(tmp_path):
    broken = broken_package(tmp_path, "torchaudio", f"raise OSError({MISMATCH!r})", "2.11.1")
    res = mmdata("doctor", "--skip", "ray", "--skip", "decord", "--json", env={"PYTHONPATH": str(broken)})
    assert res.returncode == 1
    checks = by_name(json.loads(res.stdout))
    assert checks["torchaudio"]["status"] == "fail"
    assert checks["torchaudio"]["detail"].startswith(
        "torchaudio 2.11.1 does not load with torch 2.11.0: a torch/torchaudio mismatch")
    assert "make setup" in checks["torchaudio"]["fix"]
    assert checks["packages"]["detail"] == "torchaudio 2.11.1 is installed, mmdata needs ==2.11.0"
    assert checks["ffmpeg"]["status"] == "ok" and checks["decord"]["status"] == "skip"


@pytest.mark.parametrize("argv, broken_lib, expect", [
    (["frames", "--work", "{work}"], "decord", "the frames stage cannot use decord: "),
    (["tokenizers", "fit-speech", "--work", "{work}"], "torchaudio",
     "mmdata tokenizers fit-speech cannot use torchaudio: torchaudio 2.11.1 does not load with torch 2.11.0: "
     "a torch/torchaudio mismatch"),
    (["audio", "--work", "{work}", "--mel-bins", "40"], "torchaudio", "the audio stage cannot use torchaudio"),
])
def test_a_stage_whose_library_is_broken_stops_before_any_work_with_one_line(tmp_path, argv, broken_lib, expect):
    broken = broken_package(tmp_path / "site", broken_lib, f"raise OSError({MISMATCH!r})", "2.11.1")
    work = tmp_path / "work"
    res = mmdata(*[a.format(work=work) for a in argv], env={"PYTHONPATH": str(broken)})
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("error: " + expect), res.stderr
    assert "run `mmdata doctor`" in res.stderr
    assert not work.exists()  # nothing written


def test_mmdata_run_checks_every_step_before_the_first(tmp_path):
    """A pipeline whose quantize step would fail on torchaudio stops before download starts."""
    broken = broken_package(tmp_path / "site", "torchaudio", f"raise OSError({MISMATCH!r})", "2.11.1")
    manifest = tmp_path / "m.csv"
    manifest.write_text("url\nhttps://example.com/a.mp4\n")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"manifest: {manifest}\nwork: {tmp_path / 'work'}\nout: {tmp_path / 'out'}\n")
    res = mmdata("run", str(pipeline), env={"PYTHONPATH": str(broken)})
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: mmdata run cannot use torchaudio: torchaudio 2.11.1 does not load"), res.stderr
    assert not (tmp_path / "work").exists()


def test_stale_ytdlp_is_a_warning_with_the_fix():
    c = doctor.check_ytdlp(today=dt.date(2099, 1, 1))
    assert c.status == "warn" and "days old" in c.detail and "make lock" in c.fix


def test_unknown_check_is_a_usage_error():
    res = mmdata("doctor", "--skip", "nope")
    assert res.returncode == 2 and "unknown check(s) ['nope']" in res.stderr


def test_cuda_check_without_a_gpu_is_ok_and_says_cpu():
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA driver")
    c = doctor._cuda_check({"available": False, "runtime": "13.0", "devices": []})
    assert c.status == "ok" and "no GPU visible" in c.detail


def test_js_runtime_check_finds_the_deno_the_set_up_installs_and_says_how_to_get_one(tmp_path):
    """yt-dlp's own runtime classes look (this venv's deno, from PyPI); pointed at a location with none, the
    check warns (YouTube only needs it) with the way to install one."""
    c = doctor.check_js_runtime()
    assert c.status == "ok" and c.detail.startswith("deno ") and "yt-dlp-ejs" in c.detail, c
    nowhere = {name: str(tmp_path / name) for name in ("deno", "node", "bun", "quickjs")}
    c = doctor.check_js_runtime(nowhere)
    assert c.status == "warn" and "finds no JavaScript runtime" in c.detail and "js_runtime_missing" in c.detail
    assert "`make setup` installs deno" in c.fix and "--js-runtimes" in c.fix
