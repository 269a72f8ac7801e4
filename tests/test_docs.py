"""Issue 34 §4: the README is a front page whose links all resolve, the settings reference is the
schema's own rendering, and the docs site builds in strict mode.

Expected slugs, table rows and link verdicts are typed by hand (GitHub's heading-anchor rule, the
schema's declarations read off ``src/mixsweep/config/schema.py``), never produced by the code under test."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mixsweep.config import schema
from mixsweep.config.paths import ROOT

README = ROOT / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def _settings_reference():
    spec = importlib.util.spec_from_file_location("settings_reference", ROOT / "scripts" / "settings_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> list[str]:
    """The lines of a Markdown text outside code: fenced and indented blocks dropped, code spans blanked."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if fenced or line.startswith("    ") or line.startswith("\t"):
            continue
        out.append(re.sub(r"`[^`]*`", "``", line))
    return out


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, drop what is not a letter, digit, space, ``-`` or ``_``,
    spaces become ``-`` (code marks and punctuation vanish, their text stays)."""
    text = heading.strip().lower().replace("`", "")
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a Markdown page, GitHub's way (a repeated heading gets -1, -2, …)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        m = None if fenced else re.match(r"#{1,6} +(.*?) *#* *$", line)
        if m:
            slug = github_slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path, root: Path) -> list[str]:
    """The relative links of ``page`` that name no file or folder under ``root`` (or no heading there)."""
    bad = []
    for line in _prose(page.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …: not a file of the repository
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists() or root.resolve() not in (resolved, *resolved.parents):
                bad.append(f"{target}: no such file in the repository")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                bad.append(f"{target}: {resolved.name} has no heading with anchor #{anchor}")
    return bad


def test_github_slug_follows_githubs_rule():
    assert github_slug("Resuming, and runs shared between studies") == "resuming-and-runs-shared-between-studies"
    assert github_slug("Check the box first: `make gpu-check`") == "check-the-box-first-make-gpu-check"
    assert github_slug("Calibrate, don't tune") == "calibrate-dont-tune"
    assert github_slug("Adding a `train.*` knob") == "adding-a-train-knob"


def test_the_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Which study runs\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top\n\n[ok](docs/page.md) [ok anchor](docs/page.md#which-study-runs) [folder](docs) [self](#top)\n"
        "[gone](docs/missing.md) and ![img](docs/missing.png)\n"
        "[bad anchor](docs/page.md#which-study) [web](https://example.org/x.md)\n"
        "    [in a code block](docs/also-missing.md)\n"
        "`[in a code span](docs/missing-too.md)`\n", encoding="utf-8")
    assert broken_links(readme, tmp_path) == [
        "docs/missing.md: no such file in the repository",
        "docs/missing.png: no such file in the repository",
        "docs/page.md#which-study: page.md has no heading with anchor #which-study",
    ]


def test_every_relative_link_in_the_readme_resolves():
    assert LINK.search(README.read_text(encoding="utf-8")), "the README links nowhere: the checker would pass vacuously"
    assert broken_links(README, ROOT) == []


def test_the_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    for command in ("make sweep", "make test", "LAUNCHER=slurm", "make gpu-check"):
        assert command in text
    for page in ("docs/studies.md", "docs/gpu-and-slurm.md", "docs/settings.md", "docs/benchmarks.md"):
        assert f"]({page}" in text


def test_the_settings_tables_are_the_schemas_rendering():
    ref = _settings_reference()
    page = ref.PAGE.read_text(encoding="utf-8")
    assert ref.BEGIN in page and ref.END in page
    assert ref.spliced(page) == page, "docs/settings.md is stale: run scripts/settings_reference.py --write"


def test_every_block_of_the_schema_is_on_the_settings_page():
    ref = _settings_reference()
    blocks = {name for name, value in vars(schema).items()
              if isinstance(value, dict) and value and all(isinstance(v, schema.Key) for v in value.values())}
    assert blocks == {attr for _, _, attr in ref.BLOCKS}


def test_settings_rows_read_as_the_schema_declares_them():
    # typed from the declarations in src/mixsweep/config/schema.py, the rule texts of Key.rule, the run id's
    # exclusions as runid.py kept them by hand before they were declared (record and paths: the whole block) and
    # the defaults as conf/config.yaml and conf/data/default.yaml wrote them before they were declared
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for row in (
        "| `train.max_grad_norm` | a number > 0 | `1.0` | no clipping | yes | clip the global gradient norm |",
        "| `threads` | an integer >= 1 | `null` | torch's default | no | torch CPU threads |",
        "| `optimizer.betas` | a list of 2 numbers each in [0, 1) | its config group | — | yes | Adam's (beta1, beta2) |",
        "| `record.max_examples` | an integer >= 2 | `1000` | every dev example | no | representations of at most this "
        "many dev examples |",
        "| `data.source` | one of auto, hub, glue_dir, files, bundled | `auto` | — | yes | where the task's data comes "
        "from |",
        "| `fault` | a mapping | `null` | no fault | yes | tests only: {kind: raise\\|nan_loss, step: N} |",
        "| `train.eval_every` | an integer >= 1 | `null` | the evals_per_epoch cadence | yes (null hashed as 0) | "
        "evaluate on dev every N steps |",
        "| `init_seed` | an integer >= 0 | `${seed}` | — | yes | classification-head initialisation |",
        "| `record.representations` | head, quarters, all, last, a layer number >= 1, or a list of them | "
        "`[head, quarters]` | no representations | no |",
    ):
        assert row in page, row


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (make setup)")
def test_the_site_builds_in_strict_mode(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "settings" / "index.html").is_file()
