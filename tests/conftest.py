"""Test-session settings: one intra-op thread (the models under test are tiny; oneDNN's thread start-up
costs more than it saves, and the results do not depend on it), headless matplotlib."""

import os

import torch

os.environ.setdefault("MPLBACKEND", "agg")
torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------------
# The smoke book: the suite's one end-to-end build, shared by every test that needs it.

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMOKE_BOOK = ROOT / "_build" / "smoke-book"  # a copy of the sources; its runs/ and data/ persist between sessions
KEEP = {"runs", "data", "_build"}  # what the copy keeps from its last build: steps whose key is unchanged are reused


def _source_files() -> list[Path]:
    """The checkout's files: tracked and untracked, not ignored (git), else everything outside the build folders."""
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                             capture_output=True).stdout.decode()
        return [ROOT / p for p in out.split("\0") if p and (ROOT / p).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "runs", "data", "_build", "__pycache__"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


@pytest.fixture(scope="session")
def smoke_book() -> Path:
    """``python -m egolib.book --preset smoke --jobs 2`` in a copy of the checkout (``_build/smoke-book``);
    returns the copy's root (the HTML is in ``_build/html``, the driver's log in ``_build/book.log``)."""
    SMOKE_BOOK.mkdir(parents=True, exist_ok=True)
    for child in SMOKE_BOOK.iterdir():  # fresh sources; a file deleted from the checkout is gone here too
        if child.name not in KEEP:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for src in _source_files():
        dst = SMOKE_BOOK / src.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    env = {**os.environ, "PYTHONPATH": str(SMOKE_BOOK), "MPLBACKEND": "agg"}
    (SMOKE_BOOK / "_build").mkdir(exist_ok=True)
    log = SMOKE_BOOK / "_build" / "book.log"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "egolib.book", "--preset", "smoke", "--jobs", "2"],
                              cwd=SMOKE_BOOK, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        pytest.fail(f"the smoke book failed (exit {proc.returncode}); the end of {log}:\n"
                    + "\n".join(log.read_text().splitlines()[-60:]))
    return SMOKE_BOOK
