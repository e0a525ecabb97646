"""The documentation runs: every ```python block of README.md and docs/ executes, in order, one
namespace per file (a later block may use an earlier one's names), and the generated pages
(claims, API reference) build from the code."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return BLOCK.findall(path.read_text())


def test_every_page_with_code_is_found():
    with_code = {p.relative_to(ROOT).as_posix() for p in PAGES if python_blocks(p)}
    assert {"README.md", "docs/index.md", "docs/guides/projection.md"} <= with_code


@pytest.mark.parametrize(
    "path", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_python_snippets_run(path, capsys):
    namespace = {"__name__": f"snippets_of_{path.stem}"}
    for i, block in enumerate(python_blocks(path)):
        code = compile(block, f"{path.relative_to(ROOT)} (python block {i + 1})", "exec")
        exec(code, namespace)


def test_generated_pages_build_from_the_code(tmp_path):
    pytest.importorskip("mkdocs")
    import importlib.util

    spec = importlib.util.spec_from_file_location("esparse_docs_hooks", ROOT / "docs/hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)

    assert hooks.undocumented() == []
    page, figures = hooks.claims_page(tmp_path)  # no results: every claim "not run"
    from experiments import claims

    for cid in claims.claim_ids():
        assert f"## `{cid}`" in page
        assert claims.get(cid).statement in page
    assert "**Criterion.** (see the module)" not in page  # every claim states its criterion
    assert figures == {}
    assert '"search"' in hooks.selection_rows()


# Read unbuilt (on a code host, in a fresh clone), the pages stand on their own (issue 27,
# item 8): no template placeholder, no link to a page that only the build generates, no link
# out of the repository.
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _hooks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("esparse_docs_hooks", ROOT / "docs/hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pages_read_whole_unbuilt(path):
    text = path.read_text()
    assert "{{" not in text, "a template placeholder shows raw unbuilt"
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{target}: outside the repository"
        assert resolved.exists(), f"{target}: no such file unbuilt (generated at build time?)"


def test_committed_selection_table_is_the_generated_one():
    pytest.importorskip("mkdocs")
    hooks = _hooks()
    page = (ROOT / "docs/guides/projection.md").read_text()
    assert hooks.committed_selection_table(page) == hooks.selection_table()
    assert hooks.on_page_markdown(page, None, None, None) == page


def test_the_claims_spec_ships_in_the_repository():
    spec = (ROOT / "docs/claims-spec.md").read_text()
    assert "pre-registered criterion" in spec and "## Claims" in spec
    assert "docs/claims-spec.md" in (ROOT / "README.md").read_text()
    assert "claims-spec.md" in (ROOT / "mkdocs.yml").read_text()
    shared = ROOT.parent / "shared" / "CLAIMS.md"  # the working copy it is shipped from
    if shared.exists():
        head, body = shared.read_text().split("\n", 1)
        assert spec.startswith(head + "\n") and spec.endswith(body), (
            "docs/claims-spec.md differs from ../shared/CLAIMS.md: copy the new text in "
            "(keep the preface after the title)"
        )
