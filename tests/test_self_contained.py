"""The repository stands alone: no source, page or test refers to a file outside it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".git", ".venv", "runs", "data", "_build", "__pycache__", ".ipynb_checkpoints", "egolib.egg-info",
        ".pytest_cache", ".ruff_cache"}
TEXT = {".py", ".md", ".ipynb", ".yml", ".yaml", ".toml", ".txt", ".cfg", ".bib", ".json", ".html", ".js", ".css"}
# Notes that were never part of the repository, and the folder beside it; spelled in pieces so that this file does
# not name them itself.
NOTES = ("DESIGN", "style", "models", "epic", "paper", "synthetic", "cpu_budget", "book")
OUTSIDE = re.compile(r"\b(?:" + "|".join(NOTES) + r")\.m" + r"d\b|\.\./shar" + r"ed\b|/work/shar" + r"ed\b")


def _files():
    """Every text file of the repository, except third-party copies (the EPIC annotation files and their READMEs)."""
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        third_party = parts[:2] == ("tests", "epic-annotations")
        if path.is_file() and path.suffix in TEXT and not SKIP & set(parts) and not third_party:
            yield path


def test_no_file_refers_to_notes_or_folders_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}"
             for path in _files() for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "references to files outside the repository:\n" + "\n".join(found)


def test_the_pattern_finds_what_it_must():
    for text in ("see models" + ".md §1", "(``cpu_budget" + ".md`` §7)", "../shar" + "ed/data/x.csv"):
        assert OUTSIDE.search(text), text
    assert not OUTSIDE.search("README.md, references.md, appendix_departures.md, 00_intro.md")
