"""The README's "Stage by stage" walkthrough, run as a new user runs it: each command of its code block, exactly
as written, in its own shell in an empty folder, with this environment's `python` and `mmdata` first on PATH.
A command that fails (any non-zero exit, 3 included: some clips failed) fails the test with its output."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Stage by stage"
# every step of the per-stage path: the block must keep showing each of them
STEPS = ("python -m mmdata.demo", "mmdata download", "mmdata frames", "mmdata audio", "mmdata align",
         "mmdata tokenizers fit-text", "mmdata tokenizers fit-speech", "mmdata tokenizers fit-vision",
         "mmdata quantize", "mmdata shard", "mmdata verify", "mmdata train", "mmdata eval")


def walkthrough_commands(readme: str) -> list[str]:
    """The commands of the first ```bash block after the section's heading: one per line, a line ending in a
    backslash continued on the next; blank and comment-only lines left out (comments after a command stay:
    the shell drops them)."""
    after = readme.split(f"\n{SECTION}\n", 1)
    assert len(after) == 2, f"README.md has no {SECTION!r} section"
    block = re.search(r"```bash\n(.*?)```", after[1], re.S)
    assert block, f"README.md's {SECTION!r} section has no ```bash block"
    commands, pending = [], ""
    for line in block.group(1).splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def test_the_block_parses_into_every_step():
    commands = walkthrough_commands(README.read_text())
    for step in STEPS:
        assert any(c.startswith(step) for c in commands), f"the walkthrough lost its {step!r} step"
    assert walkthrough_commands(f"x\n{SECTION}\n\n```bash\na --b \\\n  --c  # why\n# only a comment\n\nd\n```\n") \
        == ["a --b    --c  # why", "d"]


@pytest.mark.slow
def test_readme_walkthrough_runs_command_by_command(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MMDATA_SCRATCH": str(tmp_path / "scratch")}
    env.pop("MMDATA_STORAGE_OPTIONS", None)
    for command in walkthrough_commands(README.read_text()):
        done = subprocess.run(command, shell=True, executable="/bin/bash", cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        assert done.returncode == 0, f"README command failed with exit {done.returncode}:\n  {command}\n" \
                                     f"{done.stdout[-4000:]}"
    # what the walkthrough promises: shards whose index records the work folder's tokenizers, a run, an eval
    index = json.loads((tmp_path / "stages" / "shards" / "index.json").read_text())
    fitted = {sub: json.loads((tmp_path / "stages" / "work" / "tokenizers" / sub / "config.json").read_text())
              for sub in ("text", "speech", "vision")}
    assert {sub: c["hash"] for sub, c in index["tokenizers"].items()} == {s: c["hash"] for s, c in fitted.items()}
    assert [s["name"] for s in index["shards"]] == ["shard-000000-000000.tar", "shard-000000-000001.tar"]
    assert sorted(p.name for p in (tmp_path / "stages" / "run" / "checkpoints").glob("*.pt")) == ["step_0000010.pt"]
    assert "retrieval on 6 held-out samples (step 10)" in done.stdout
