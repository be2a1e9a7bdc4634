"""`mmdata doctor`: check what mmdata needs from this machine and say what is wrong, with the fix.

Each check that loads native code (torch and its companions, decord, Ray) runs in a child Python, so a
library that crashes its process or poisons the interpreter cannot take the doctor down with it; the
checks run side by side and print in a fixed order. A check is `ok`, `warn` (works, with a caveat that
matters for some corpora or machines), `fail` (a stage will not run) or `skip` (not applicable / asked
not to run). The exit code is 1 when any check failed.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from mmdata.environment import (REINSTALL, SYSTEM_INSTALL, describe_import_failure, installed_version,
                                requirement_problems)

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
CODECS = ("h264", "vp9", "av1", "hevc")  # the codecs YouTube serves
YTDLP_STALE_DAYS = 90  # YouTube changes often; a yt-dlp this old usually fails on it
CHILD_TIMEOUT_S = 120


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _child(code: str, *args: str, timeout: float = CHILD_TIMEOUT_S) -> tuple[dict | None, str]:
    """Run `code` in a child of this Python; it prints one JSON object last. -> (that object, stderr tail)."""
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout:.0f} s"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1]), ""
    tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    if proc.returncode < 0:
        tail = f"the process was killed by signal {-proc.returncode} ({tail})"
    return None, tail


def check_python() -> Check:
    v = sys.version_info
    if (v.major, v.minor) != (3, 11):
        return Check("python", FAIL, f"{sys.version.split()[0]} at {sys.executable}",
                     "mmdata is locked and tested on Python 3.11: make PY=/path/to/python3.11 setup")
    return Check("python", OK, f"{sys.version.split()[0]} at {sys.executable}")


def check_packages() -> Check:
    """Installed versions against mmdata's requirements: what the lock installed, or a drifted environment."""
    n, problems = requirement_problems()
    if problems:
        return Check("packages", FAIL, "; ".join(problems), REINSTALL)
    triple = ", ".join(f"{name} {installed_version(name)}" for name in ("torch", "torchaudio", "torchvision"))
    return Check("packages", OK, f"{n} requirements satisfied ({triple})")


def _tool_version(tool: str, flag: str = "-version") -> str | None:
    path = shutil.which(tool)
    if not path:
        return None
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.strip().splitlines() or ["?"])[0]


def check_ffmpeg() -> list[Check]:
    checks = []
    for tool in ("ffmpeg", "ffprobe"):
        line = _tool_version(tool)
        if line is None:
            checks.append(Check(tool, FAIL, f"{tool} is not on PATH: no frames, audio or media checks",
                                f"install it: {SYSTEM_INSTALL}"))
        else:
            checks.append(Check(tool, OK, line.replace(" Copyright", ";").split(";")[0]))
    if checks[0].status == OK:
        # the same list the frames stage consults (hardware-only decoders, native AV1 among them, left out)
        from mmdata.media.ffmpeg_video import software_decoders
        decoders = software_decoders()
        found = {codec: (decoders.get(codec) or (None,))[0] for codec in CODECS}
        have = ", ".join(f"{c} ({d})" for c, d in found.items() if d)
        lacking = [c for c, d in found.items() if not d]
        if lacking:
            checks.append(Check("codecs", WARN, f"ffmpeg decodes {have or 'none of them'}; not {', '.join(lacking)}",
                                "YouTube serves these; install a full ffmpeg build (Debian's decodes all four)"))
        else:
            checks.append(Check("codecs", OK, f"ffmpeg decodes {have}"))
    return checks


def check_espeak() -> Check:
    line = _tool_version("espeak-ng", "--version")
    if line is None:
        return Check("espeak-ng", WARN, "espeak-ng is not on PATH: `make demo` and the tests synthesise speech "
                     "with it (corpus building does not need it)", f"install it: {SYSTEM_INSTALL}")
    return Check("espeak-ng", OK, line.split(" Data at")[0])


_TORCH_CODE = r"""
import json, sys
out = {"versions": {}, "errors": {}}
for name in ("torch", "torchaudio", "torchvision"):
    try:
        mod = __import__(name)
        out["versions"][name] = mod.__version__
    except Exception as e:
        out["errors"][name] = [type(e).__name__, str(e), getattr(e, "name", None)]
if not out["errors"]:
    import torch, torchaudio, torchvision
    try:  # native ops of each companion, not only their Python files
        torchaudio.functional.resample(torch.zeros(1, 1600), 16000, 8000)
        torchvision.ops.nms(torch.tensor([[0., 0., 1., 1.]]), torch.tensor([1.]), 0.5)
    except Exception as e:
        out["errors"]["ops"] = [type(e).__name__, str(e), None]
if "torch" in out["versions"]:
    import torch
    cuda = {"available": torch.cuda.is_available(), "runtime": torch.version.cuda, "devices": []}
    if cuda["available"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            cuda["devices"].append(f"{p.name} ({p.total_memory / 2**30:.0f} GiB)")
    out["cuda"] = cuda
print(json.dumps(out))
"""


def _rebuild(err: list) -> BaseException:
    """The child's exception, rebuilt enough for describe_import_failure to classify it."""
    kind, text, missing = err
    if kind == "ModuleNotFoundError":
        return ModuleNotFoundError(text, name=missing)
    return {"OSError": OSError, "ImportError": ImportError}.get(kind, RuntimeError)(text)


def check_torch() -> list[Check]:
    res, err = _child(_TORCH_CODE)
    if res is None:
        return [Check("torch", FAIL, f"importing torch crashed its process: {err}", REINSTALL),
                Check("cuda", SKIP, "torch did not load")]
    checks = []
    errors = res["errors"]
    for name in ("torch", "torchaudio", "torchvision"):
        if name in errors:
            checks.append(Check(name, FAIL, describe_import_failure(name, _rebuild(errors[name])), REINSTALL))
    if "ops" in errors:
        checks.append(Check("torch", FAIL, "torch, torchaudio and torchvision import, but their native ops "
                            f"fail together ({errors['ops'][1].splitlines()[0]}): a version mismatch", REINSTALL))
    if not checks:
        v = res["versions"]
        checks.append(Check("torch", OK, f"torch {v['torch']}, torchaudio {v['torchaudio']}, torchvision "
                            f"{v['torchvision']} load together"))
    checks.append(_cuda_check(res.get("cuda")))
    return checks


def _cuda_check(cuda: dict | None) -> Check:
    smi = shutil.which("nvidia-smi")
    driver = None
    if smi:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout.strip().splitlines()
        driver = out[0] if out else None
    if cuda is None:
        return Check("cuda", SKIP, "torch did not load")
    if cuda["available"]:
        return Check("cuda", OK, f"{len(cuda['devices'])} GPU(s): {', '.join(cuda['devices'])}; CUDA runtime "
                     f"{cuda['runtime']}, driver {driver or 'unknown (no nvidia-smi)'}")
    if driver:
        return Check("cuda", WARN, f"an NVIDIA driver ({driver}) is present but torch sees no GPU (torch built for "
                     f"CUDA {cuda['runtime']})", "the driver may be older than this CUDA runtime needs: update it, "
                     "or check CUDA_VISIBLE_DEVICES")
    return Check("cuda", OK, f"no GPU visible: quantize and train run on the CPU (torch built for CUDA "
                 f"{cuda['runtime'] or 'none'})")


_DECORD_CODE = r"""
import json, sys
import decord
vr = decord.VideoReader(sys.argv[1], ctx=decord.cpu(0), num_threads=1)
frame = vr[len(vr) // 2].asnumpy()
print(json.dumps({"version": decord.__version__, "frames": len(vr), "shape": list(frame.shape)}))
"""


def check_decord() -> Check:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return Check("decord", SKIP, "needs ffmpeg to make its test video")
    with tempfile.TemporaryDirectory(prefix="mmdata-doctor-") as tmp:
        video = Path(tmp) / "probe.mp4"
        made = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                               "testsrc=size=64x48:rate=10:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                               str(video)], capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            return Check("decord", SKIP, f"ffmpeg could not make a test video: {made.stderr.strip()[-200:]}")
        res, err = _child(_DECORD_CODE, str(video))
    if res is None:
        if "ModuleNotFoundError" in err:
            return Check("decord", FAIL, "decord is not installed: the frames stage cannot run", REINSTALL)
        return Check("decord", FAIL, f"decord could not read a generated H.264 video: {err}", REINSTALL)
    if res["frames"] != 10 or res["shape"] != [48, 64, 3]:
        return Check("decord", FAIL, f"decord read {res['frames']} frames of shape {res['shape']} from a 10-frame "
                     "64x48 video", REINSTALL)
    return Check("decord", OK, f"{res['version']} reads a generated H.264 video (10 frames, 64x48)")


def check_ytdlp(today: dt.date | None = None) -> Check:
    version = installed_version("yt-dlp")
    if version is None:
        return Check("yt-dlp", FAIL, "yt-dlp is not installed: nothing can be downloaded", REINSTALL)
    try:
        released = dt.date(*[int(p) for p in version.split(".")[:3]])
    except (TypeError, ValueError):
        return Check("yt-dlp", OK, version)
    age = ((today or dt.date.today()) - released).days
    if age > YTDLP_STALE_DAYS:
        return Check("yt-dlp", WARN, f"{version} is {age} days old; YouTube changes often and old releases "
                     "stop working on it", "update the pin in pyproject.toml, then `make lock` and `make test`")
    return Check("yt-dlp", OK, f"{version} ({age} days old)")


JS_INSTALL = ("`make setup` installs deno from PyPI (yt-dlp[deno] in pyproject.toml); elsewhere `pip install "
              "deno yt-dlp-ejs`, or a node >= 22 / bun / quickjs you have with `--js-runtimes node` (download)")


def check_js_runtime(paths: dict[str, str] | None = None) -> Check:
    """Whether yt-dlp can run YouTube's JavaScript challenges: a supported runtime it finds (where it looks:
    this Python's scripts folder, then PATH; or `paths`, per runtime, as `--js-runtimes NAME:PATH` gives)
    and the challenge solver scripts. Without them YouTube formats go missing (`js_runtime_missing` rows);
    other sites do not need them."""
    try:
        import yt_dlp  # noqa: F401  (registers the runtimes)
        from yt_dlp.dependencies import yt_dlp_ejs
        from yt_dlp.globals import supported_js_runtimes
    except Exception as e:  # an old yt-dlp without runtimes, or a broken install: the yt-dlp check says which
        return Check("js-runtime", WARN, f"yt-dlp's JavaScript runtime support does not load ({e})",
                     "update yt-dlp: `make lock` and `make setup`")
    scripts = f"yt-dlp-ejs {yt_dlp_ejs.version}" if yt_dlp_ejs else "the solver scripts built into yt-dlp"
    found, too_old = [], []
    for name, runtime in supported_js_runtimes.value.items():  # in yt-dlp's order of preference
        info = runtime(path=(paths or {}).get(name)).info
        if info is not None:
            (found if info.supported else too_old).append((name, f"{info.name} {info.version} ({info.path})"))
    if any(name == "deno" for name, _ in found):
        return Check("js-runtime", OK, f"{dict(found)['deno']} runs YouTube's challenges, with {scripts}")
    old = "; too old for yt-dlp: " + ", ".join(d for _, d in too_old) if too_old else ""
    if found:
        name, detail = found[0]
        return Check("js-runtime", WARN, f"no deno, but {detail}: yt-dlp enables only deno unless told{old}",
                     f"download with `--js-runtimes {name}` (YAML: `download: {{js_runtimes: [{name}]}}`), or: "
                     + JS_INSTALL)
    return Check("js-runtime", WARN, "yt-dlp finds no JavaScript runtime: YouTube downloads will miss formats "
                 f"or fail with js_runtime_missing (other sites are unaffected){old}", JS_INSTALL)


_RAY_CODE = r"""
import json, logging, sys
import ray
address = sys.argv[1] or None
kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
if address:
    ray.init(address=address, **kwargs)
else:
    ray.init(address="local", num_cpus=1, **kwargs)
res = ray.cluster_resources()
out = {"version": ray.__version__, "cpus": res.get("CPU", 0), "gpus": res.get("GPU", 0),
       "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
ray.shutdown()
print(json.dumps(out))
"""


def check_ray(address: str | None) -> Check:
    res, err = _child(_RAY_CODE, address or "", timeout=180)
    where = f"the cluster at {address}" if address else "a local Ray"
    if res is None:
        fix = ("check the address, that the cluster runs the same Ray version, and RAY_AUTH_MODE / the auth "
               "token (`ray get-auth-token`)" if address else REINSTALL)
        return Check("ray", FAIL, f"{where} did not start or answer: {err}", fix)
    return Check("ray", OK, f"{res['version']}: {where} answers with {res['nodes']} node(s), {res['cpus']:g} CPUs, "
                 f"{res['gpus']:g} GPUs")


CHECKS: dict[str, Callable[..., Check | list[Check]]] = {
    "python": check_python, "packages": check_packages, "ffmpeg": check_ffmpeg, "espeak-ng": check_espeak,
    "torch": check_torch, "decord": check_decord, "yt-dlp": check_ytdlp, "js-runtime": check_js_runtime,
    "ray": check_ray,
}


def run_checks(ray_address: str | None = None, skip: tuple[str, ...] = (), progress: bool = False) -> list[Check]:
    """Every check (those in `skip` reported as skipped), in CHECKS order. `progress`: a bar on stderr naming
    the checks still running (they run side by side; Ray and torch take the longest)."""
    from concurrent.futures import as_completed

    from tqdm import tqdm

    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) {sorted(unknown)}: choose from {sorted(CHECKS)}")
    jobs = {name: (lambda f=fn, n=name: f(ray_address) if n == "ray" else f())
            for name, fn in CHECKS.items() if name not in skip}
    with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        with tqdm(total=len(futures), desc="doctor", unit="check", disable=not progress, dynamic_ncols=True) as bar:
            waiting = set(futures)
            for done in as_completed(futures.values()):
                waiting -= {n for n, f in futures.items() if f is done}
                bar.set_postfix_str("waiting for " + ", ".join(sorted(waiting)) if waiting else "", refresh=False)
                bar.update(1)
        results: list[Check] = []
        for name in CHECKS:
            if name in skip:
                results.append(Check(name, SKIP, "skipped (--skip)"))
                continue
            got = futures[name].result()
            results.extend(got if isinstance(got, list) else [got])
    return results


def render(checks: list[Check]) -> str:
    lines = ["mmdata doctor"]
    for c in checks:
        lines.append(f"  {c.status.upper() if c.status == FAIL else c.status:<5} {c.name:<12} {c.detail}")
        if c.fix and c.status in (FAIL, WARN):
            lines.append(f"  {'':<5} {'':<12} fix: {c.fix}")
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL, SKIP)}
    verdict = "all is well" if not counts[FAIL] else "mmdata will not run correctly until the failures are fixed"
    lines.append(f"{counts[OK]} ok, {counts[WARN]} warnings, {counts[FAIL]} failed, {counts[SKIP]} skipped: {verdict}")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], indent=2)


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == FAIL for c in checks) else 0
