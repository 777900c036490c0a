"""Every reference in code, data and docs resolves inside the repository.

* ``see <file>`` / ``See `<file>` ``: the file exists (relative to the repository root or to the citing
  file's folder).
* A repository path written out (``docs/...``, ``ccm_core/...``, ``tests/...``): it exists.
* The domain reference is cited only as ``docs/reference/ccm-rules.md`` / ``docs/reference/kpi-definitions.md``
  (never a copy outside the repository), and every ``§N`` / ``§N.M`` after it names a heading of that
  document (or item M of the numbered list in section N).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_DOCS = ("ccm-rules", "kpi-definitions")
TEXT_SUFFIXES = (".py", ".md", ".csv", ".toml", ".txt", ".example", ".ini")
# Written by the app or the bench at run time, or kept out of git on purpose: named, never shipped.
GENERATED = (".streamlit/secrets.toml", "bench/out")
# Named by code that landed before its document; each entry says who writes it.  Remove it when it lands.
PENDING: set[str] = set()

SEE = re.compile(
    r"\bsee\s+[`'\"]*([A-Za-z0-9_][A-Za-z0-9_./-]*\.(?:md|py|csv|toml|example|json|ini|txt))\b", re.IGNORECASE
)
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:docs|ccm_core|ui|pages|tests|bench|\.streamlit|\.ci)/[A-Za-z0-9_./-]*"
    r"[A-Za-z0-9_])"
)
REF = re.compile(
    r"(?P<path>[\w./-]*?)(?P<name>ccm-rules|kpi-definitions)\.md`{0,2}"
    r"(?: §(?P<secs>\d+(?:\.\d+)?(?:(?:, | / |-)\d+(?:\.\d+)?)*))?"
)


def _files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / f for f in out if f.endswith(TEXT_SUFFIXES) and (ROOT / f).is_file()]


@cache
def _sections(name: str) -> dict[str, set[str]]:
    """Section number -> numbers of its ordered-list items, from the headings of docs/reference/<name>.md."""
    out: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "docs" / "reference" / f"{name}.md").read_text().splitlines():
        m = re.match(r"#{2,4} (\d+(?:\.\d+)?)[. ]", line)
        if m:
            current = m.group(1)
            out.setdefault(current, set())
            out.setdefault(current.split(".")[0], set())
            continue
        item = re.match(r"(\d+)\. ", line)
        if item and current is not None:
            out[current].add(item.group(1))
    return out


def _resolves(name: str, number: str) -> bool:
    sections = _sections(name)
    if number in sections:
        return True
    top, _, item = number.partition(".")
    return bool(item) and item in sections.get(top, set())


def test_every_see_reference_names_a_file_in_the_repository():
    missing = []
    for f in _files():
        for m in SEE.finditer(f.read_text(encoding="utf-8", errors="replace")):
            target = m.group(1).rstrip(".")
            if target.startswith("www.") or target in PENDING:
                continue
            if not any(
                (base / target).exists() for base in (ROOT, f.parent, ROOT / "docs", ROOT / "data" / "examples")
            ):
                missing.append(f"{f.relative_to(ROOT)}: see {target}")
    assert missing == []


def test_every_repository_path_written_out_exists():
    missing = []
    for f in _files():
        for m in REPO_PATH.finditer(f.read_text(encoding="utf-8", errors="replace")):
            target = m.group(1).rstrip(".")
            if target.startswith(GENERATED) or target in PENDING or "*" in target or "<" in target:
                continue
            if not (ROOT / target).exists():
                missing.append(f"{f.relative_to(ROOT)}: {target}")
    assert missing == []


def test_domain_reference_citations_point_inside_the_repository_at_real_sections():
    bad = []
    cited = 0
    for f in _files():
        rel = f.relative_to(ROOT).as_posix()
        for m in REF.finditer(f.read_text(encoding="utf-8", errors="replace")):
            cited += 1
            where = f"{rel}: {m.group(0)}"
            if m.group("path") != "docs/reference/" and not (rel.startswith("docs/reference/") and not m.group("path")):
                bad.append(f"{where} (cite it as docs/reference/{m.group('name')}.md)")
            for number in re.split(r", | / |-", m.group("secs") or ""):
                if number and not _resolves(m.group("name"), number):
                    bad.append(f"{where} (no section {number})")
    assert bad == []
    assert cited > 100  # the code and the rule data cite the reference throughout


def test_the_section_checker_rejects_a_missing_section():
    assert _resolves("ccm-rules", "7.2") and _resolves("ccm-rules", "10.3") and _resolves("kpi-definitions", "3.3")
    assert not _resolves("ccm-rules", "13") and not _resolves("ccm-rules", "7.9")
    assert not _resolves("kpi-definitions", "4")
