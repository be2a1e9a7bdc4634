"""The registry of error reasons (mmdata/reasons.py): every reason the code raises is in it, the README
table is generated from it, and describe() resolves names, families and old names."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from mmdata import reasons
from mmdata.reasons import REASONS, RENAMED, describe

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmdata"



def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _template(node: ast.JoinedStr) -> str:
    """An f-string as a family template: f"http_{e.code}" -> "http_<>"."""
    return "".join(v.value if isinstance(v, ast.Constant) else "<>" for v in node.values)


def _assigned(func: ast.AST | None, name: str) -> list[ast.expr]:
    if func is None:
        return []
    return [n.value for n in ast.walk(func) if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)]


def _reasons_of(node: ast.expr, func: ast.AST | None) -> list[tuple[str, str]]:
    """("name", reason) or ("template", "http_<>") for each reason an expression can be; a reason passed
    along from elsewhere (`found.reason`, `classify(msg)`) gives nothing here."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [("name", node.value)]
    if isinstance(node, ast.JoinedStr):
        return [("template", _template(node))]
    if isinstance(node, ast.IfExp):
        return _reasons_of(node.body, func) + _reasons_of(node.orelse, func)
    if isinstance(node, ast.Name):
        return [r for value in _assigned(func, node.id) for r in _reasons_of(value, func)]
    return []


def raised_reasons() -> list[tuple[str, int, str, str]]:
    """(file, line, kind, reason) for every reason mmdata/ raises: ItemError(reason, ...) and the runner's
    StatusRow(key, "error", reason, ...)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name == "ItemError" and node.args:
                arg = node.args[0]
            elif (name == "StatusRow" and len(node.args) >= 3 and isinstance(node.args[1], ast.Constant)
                  and node.args[1].value == "error"):
                arg = node.args[2]
            else:
                continue
            func = min((f for f in funcs if f.lineno <= node.lineno <= f.end_lineno),
                       key=lambda f: f.end_lineno - f.lineno, default=None)
            for kind, reason in _reasons_of(arg, func):
                found.append((str(path.relative_to(ROOT)), node.lineno, kind, reason))
    return found


FAMILY_TEMPLATES = {re.sub(r"<[^>]*>", "<>", r.name) for r in REASONS if r.is_family}


def _registered(kind: str, reason: str) -> bool:
    if kind == "template":
        return reason in FAMILY_TEMPLATES
    return reason not in RENAMED and describe(reason) is not None


def test_the_scan_finds_the_reasons_it_should():
    found = {(f, r) for f, _, _, r in raised_reasons()}
    assert ("mmdata/tools.py", "<>_timeout") in found  # an f-string without a constant prefix
    assert ("mmdata/transcripts/validate.py", "times_beyond_media") in found  # a conditional expression
    assert ("mmdata/fetch/ytdlp.py", "download_failed") in found  # a variable assigned in the function
    assert ("mmdata/pipelines/items.py", "worker_crashed") in found  # the runner's own rows (items.py)
    assert len(found) > 60


def test_every_raised_reason_is_registered():
    unknown = [f"{f}:{line}: {reason!r}" + (f" (renamed to {RENAMED[reason]!r})" if reason in RENAMED else "")
               for f, line, kind, reason in raised_reasons()
               if not _registered(kind, reason)]
    assert not unknown, ("reasons raised but not in mmdata/reasons.py (add them to REASONS, or use the "
                         "registered name):\n  " + "\n  ".join(unknown))


def test_no_string_in_the_code_is_an_old_name():
    """Reasons made away from ItemError (a shard's left_out key, a literal compared against) use the
    current names too."""
    old = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if path.name == "reasons.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and node.value in RENAMED):
                old.append(f"{rel}:{node.lineno}: {node.value!r} -> {RENAMED[node.value]!r}")
    assert not old, "old reason names in the code:\n  " + "\n  ".join(old)


def test_tool_timeouts_and_ytdlp_classes_are_registered():
    from mmdata.fetch.classify import _PATTERNS, BLOCKING, classify, http_reason

    steps = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _call_name(node) == "run_tool" and len(node.args) >= 3:
                assert isinstance(node.args[2], ast.Constant), f"{path}:{node.lineno}: `what` is not a literal"
                steps.add(node.args[2].value)
    assert steps >= {"probe", "scan", "decode", "audio", "remux"}
    for step in steps:
        assert describe(f"{step}_timeout") is not None, f"{step}_timeout: add {step!r} to reasons.TOOL_STEPS"
    for reason, _ in _PATTERNS:
        assert describe(reason) is not None, reason
    for reason in (*BLOCKING, "js_runtime_missing", "no_format_under_cap", http_reason(429), http_reason(404)):
        assert describe(reason) is not None, reason
    assert describe(classify("ERROR: HTTP Error 404: Not Found")).name == "http_<status>"
    assert describe(classify("something nobody expected")) is not None


# --- the registry itself --------------------------------------------------------------------------------

def test_entries_are_one_line_each_and_unique():
    names = [r.name for r in REASONS]
    assert len(names) == len(set(names))
    for r in REASONS:
        assert re.fullmatch(r"[a-z0-9_]*:?(<[a-z ]+>)?[a-z0-9_]*", r.name), r.name  # duplicate_of:<key>
        assert r.stages and r.meaning and r.action, r.name
        for text in (r.meaning, r.action, *r.stages):
            assert "\n" not in text and "|" not in text, r.name
        assert bool(r.parts) == r.is_family, r.name


def test_no_exact_name_is_also_a_family_member():
    """Each reason string has one entry: a name never falls inside a family's pattern as well."""
    for r in REASONS:
        if not r.is_family:
            assert not any(f.matches(r.name) for f in REASONS if f.is_family), r.name


def test_renamed_names_point_at_current_ones():
    for old, new in RENAMED.items():
        assert describe(old) is not None and describe(old) is describe(new), old
        assert old not in {r.name for r in REASONS}, old


@pytest.mark.parametrize("reason, entry", [
    ("http_404", "http_<status>"),
    ("http_503", "http_<status>"),
    ("missing_frames", "missing_<stage>"),
    ("missing_audio", "missing_<stage>"),
    ("missing_download", "missing_<stage>"),
    ("missing_quantize", "missing_<stage>"),
    ("probe_timeout", "<step>_timeout"),
    ("decode_timeout", "<step>_timeout"),
    ("timeout", "timeout"),
    ("missing_output_file", "missing_output_file"),
    ("frames:corrupt_file", "corrupt_file"),
    ("download:http_404", "http_<status>"),
    ("not_downloaded", "missing_<stage>"),  # an old name, as older work stores hold it
])
def test_describe_resolves_names_and_families(reason, entry):
    assert describe(reason).name == entry


@pytest.mark.parametrize("reason", ["http_abc", "http_4040", "missing_everything", "foo_timeout", "nonsense", ""])
def test_describe_refuses_what_mmdata_does_not_write(reason):
    assert describe(reason) is None


# --- the README table -----------------------------------------------------------------------------------

def _readme_table() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("### What each error reason means", 1)[1]
    section = re.split(r"\n#{1,3} ", section, maxsplit=1)[0]
    lines = section.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end]) + "\n"


def test_readme_lists_exactly_the_registry():
    table = _readme_table()
    listed = {name for row in table.splitlines()[2:] for name in re.findall(r"`([^`]+)`", row.split("|")[2])}
    registry = {r.name for r in REASONS}
    assert listed == registry, (f"README only: {sorted(listed - registry)}; registry only: "
                                f"{sorted(registry - listed)}")
    assert table == reasons.markdown(), ("the README table is not the registry's: paste the output of "
                                         "`python -m mmdata.reasons --markdown` under \"What each error reason means\"")


def test_markdown_command(capsys):
    assert reasons.main(["--markdown"]) == 0
    assert capsys.readouterr().out == reasons.markdown()
    assert reasons.main([]) == 2


def test_a_reason_whose_part_is_a_key_is_described_and_counted_as_one():
    from mmdata.reasons import counted

    assert describe("duplicate_of:src_0_1000").name == "duplicate_of:<key>"
    assert describe("dedup:duplicate_of:src_0_1000").name == "duplicate_of:<key>"  # a shard's left_out key
    assert describe("frames:corrupt_file").name == "corrupt_file"
    assert counted("duplicate_of:src_0_1000") == "duplicate_of" and counted("http_404") == "http_404"
