"""The committed lock (uv.lock) must say exactly what pyproject.toml asks for, and pin the torch triple
that was tested together. `make lock-check` (uv's own check, run by `make test`) covers the same ground
with a resolver; this test needs no tool and says which line disagrees."""
from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
TRIPLE = ("torch", "torchaudio", "torchvision")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def _declared() -> dict[str, str]:
    """name -> specifier (with its extra marker) from pyproject.toml."""
    project = _pyproject()["project"]
    out = {}
    for text in project["dependencies"]:
        req = Requirement(text)
        out[req.name.lower()] = str(req.specifier)
    for extra, reqs in project.get("optional-dependencies", {}).items():
        for text in reqs:
            req = Requirement(text)
            out[req.name.lower()] = f"{req.specifier} [{extra}]"
    return out


def _locked_metadata() -> dict[str, str]:
    """The same, as the lock recorded pyproject.toml when it was made."""
    root = next(p for p in _lock()["package"] if p["name"] == "mmdata")
    out = {}
    for dep in root["metadata"]["requires-dist"]:
        spec = str(Requirement(f"x{dep.get('specifier', '')}").specifier)
        marker = dep.get("marker", "")  # "extra == 'dev'"
        out[dep["name"].lower()] = f"{spec} [{marker.split('==')[1].strip()[1:-1]}]" if marker else spec
    return out


def _locked_versions() -> dict[str, str]:
    return {p["name"].lower(): p["version"] for p in _lock()["package"]}


def test_lock_matches_pyproject():
    declared, locked = _declared(), _locked_metadata()
    stale = {name: (declared.get(name), locked.get(name)) for name in declared.keys() | locked.keys()
             if declared.get(name) != locked.get(name)}
    assert not stale, f"pyproject.toml and uv.lock disagree (pyproject, lock): {stale}; run `make lock`"


def test_every_locked_version_satisfies_pyproject():
    versions = _locked_versions()
    for name, spec in _declared().items():
        spec = spec.split(" [")[0]
        assert name in versions, f"{name} is declared but not in uv.lock"
        assert Version(versions[name]) in Requirement(f"x{spec}").specifier, (name, versions[name], spec)


def test_torch_triple_is_pinned_exactly_and_locked_at_the_pin():
    declared, versions = _declared(), _locked_versions()
    for name in TRIPLE:
        spec = declared[name]
        assert spec.startswith("==") and "*" not in spec, f"{name} must be pinned exactly, not {spec!r}"
        assert versions[name] == spec[2:], (name, versions[name], spec)
    # torchaudio and torch of one release train; torchvision's minor is torch's plus 15 (0.26 <-> 2.11)
    torch, audio, vision = (Version(versions[n]) for n in TRIPLE)
    assert (audio.major, audio.minor) == (torch.major, torch.minor)
    assert (vision.major, vision.minor) == (0, torch.minor + 15)


def test_lock_covers_linux_only_and_python_311():
    lock = _lock()
    assert lock["requires-python"] == "==3.11.*"
    assert lock["supported-markers"] == ["sys_platform == 'linux'"]
