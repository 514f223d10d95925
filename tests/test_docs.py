"""The README stays a true guide: its links resolve and it names every registered backend."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_links_to_files_and_sections_that_exist():
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs|benchmarks)/[^)#\s]+)(#[^)]+)?\)", readme)
    assert links, "the README links its detail pages"
    for path, anchor in links:
        target = REPO / path
        assert target.exists(), path
        if anchor:
            heads = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
                     for h in re.findall(r"^#+ (.+)$", target.read_text(), flags=re.M)}
            assert anchor[1:] in heads, (path, anchor)


def test_readme_names_every_registered_backend():
    import json
    import subprocess
    import sys

    # a fresh interpreter: other tests register test-only backends (plugins) in this one
    shipped = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from active_o3_ros.backends.base import available_backends; "
         "print(json.dumps(available_backends()))"], capture_output=True, text=True, check=True).stdout)
    readme = (REPO / "README.md").read_text()
    for role, names in shipped.items():
        for name in names:
            assert f"`{name}`" in readme, (role, name)


def test_docs_pages_link_to_files_that_exist():
    for page in sorted((REPO / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)
