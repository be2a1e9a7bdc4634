"""What mmdata needs from the machine, and one sentence for each way that can be broken.

Stages declare their `Needs` (Python libraries by import name, system tools by command name). The runner
and `mmdata run` check them in the driver before any work, so a broken install is one line that names the
library and what failed (`MissingDependencyError`, exit 2), never a traceback from every worker.
`mmdata doctor` (mmdata/doctor.py) checks everything at once and reuses the explanations here.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import shutil
from dataclasses import dataclass
from types import ModuleType

from mmdata.errors import MissingDependencyError

REINSTALL = "reinstall from the lock: `make setup` (or `uv sync --locked --extra dev`)"
SYSTEM_INSTALL = "apt-get install -y ffmpeg espeak-ng"
# import name -> distribution name, where they differ
DISTRIBUTIONS = {"yaml": "pyyaml", "PIL": "pillow", "yt_dlp": "yt-dlp"}
# torch's companions, built against one torch release each: a mismatch fails at import with an undefined
# symbol (torchaudio) or a missing operator (torchvision)
TORCH_COMPANIONS = ("torchaudio", "torchvision")


@dataclass(frozen=True)
class Needs:
    libraries: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    def __or__(self, other: "Needs") -> "Needs":
        return Needs(tuple(dict.fromkeys(self.libraries + other.libraries)),
                     tuple(dict.fromkeys(self.tools + other.tools)))


# What each pipeline step needs at the least; a stage adds what its config turns on (Stage.needs()).
MEDIA_TOOLS = ("ffmpeg", "ffprobe")
STEP_NEEDS: dict[str, Needs] = {
    "download": Needs(("yt_dlp", "PIL"), ("ffprobe",)),
    "frames": Needs(("decord", "PIL"), MEDIA_TOOLS),
    "shots": Needs(("scenedetect", "cv2"), MEDIA_TOOLS),
    "vad": Needs(("torch",), MEDIA_TOOLS),
    "audio": Needs((), MEDIA_TOOLS),
    "align": Needs(),
    "filter": Needs(("PIL", "py3langid")),
    "dedup": Needs(("PIL",), ("ffmpeg",)),  # its signatures: frames' pHashes, the sources' packet hashes
    "signatures": Needs(("PIL",), ("ffmpeg",)),
    "tokenizers": Needs(("torch", "torchaudio", "tokenizers"), ("ffmpeg",)),
    # no ffmpeg: the audio stage's FLAC at 16 kHz decodes in-process, so a GPU node needs no media tools;
    # other audio (another rate, several channels) becomes `missing_ffmpeg` rows there
    "quantize": Needs(("torch", "torchaudio", "tokenizers")),
    "shard": Needs(("webdataset",)),
    "train": Needs(("torch", "webdataset")),
}


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _release(version: str | None) -> str:
    """'2.11.0+cu130' -> '2.11.0': the local build tag says which CUDA, not which release."""
    return (version or "?").split("+")[0]


def describe_import_failure(name: str, exc: BaseException) -> str:
    """Why `import name` failed, in words a user can act on (without the fix)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ModuleNotFoundError):
        missing = (exc.name or name).split(".")[0]
        if missing == name.split(".")[0]:
            return f"{name} is not installed"
        return f"{name} needs {missing}, which is not installed"
    root = name.split(".")[0]
    if root in TORCH_COMPANIONS and ("undefined symbol" in text or "does not exist" in text):
        return (f"{root} {_release(installed_version(root))} does not load with torch "
                f"{_release(installed_version('torch'))}: a torch/{root} mismatch, each {root} release is built "
                f"for one torch release ({text})")
    if "undefined symbol" in text or "cannot open shared object" in text:
        return f"{name}'s native library does not load ({text})"
    return f"importing {name} failed with {type(exc).__name__}: {text}"


def import_library(name: str, who: str = "mmdata") -> ModuleType:
    """Import `name` or raise MissingDependencyError naming the library and what failed.

    Catches every exception, not only ImportError: a mismatched native extension raises OSError, and a
    half-installed package can raise anything at import time."""
    try:
        return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - see the docstring
        raise MissingDependencyError(
            f"{who} cannot use {name}: {describe_import_failure(name, e)}; {REINSTALL}, "
            f"and run `mmdata doctor` for the whole picture") from e


def require_tool(name: str) -> str:
    """Path of a system tool, or a clear error saying how to install it."""
    found = shutil.which(name)
    if not found:
        raise MissingDependencyError(f"{name} not found on PATH; install it ({SYSTEM_INSTALL}) and run "
                                     f"`mmdata doctor`")
    return found


def check_needs(needs: Needs, who: str) -> None:
    """Raise MissingDependencyError for the first library that does not import or tool that is missing."""
    for tool in needs.tools:
        require_tool(tool)
    for lib in needs.libraries:
        import_library(lib, who)


def requirement_problems() -> tuple[int, list[str]]:
    """mmdata's declared runtime requirements against what is installed (the lock installs versions that
    satisfy them; a hand-made change to the environment may not). -> (requirements checked, problems)."""
    from packaging.requirements import Requirement

    try:
        declared = importlib.metadata.requires("mmdata") or []
    except importlib.metadata.PackageNotFoundError:
        return 0, ["mmdata itself is not installed in this environment"]
    problems, n = [], 0
    for text in declared:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an optional extra, or another platform's requirement
        n += 1
        have = installed_version(req.name)
        if have is None:
            problems.append(f"{req.name} is missing (needs {req.specifier})")
        elif not req.specifier.contains(have.split("+")[0], prereleases=True):
            problems.append(f"{req.name} {have} is installed, mmdata needs {req.specifier}")
    return n, problems
