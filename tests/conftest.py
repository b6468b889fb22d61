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
SMOKE_BOOK_EPIC100 = ROOT / "_build" / "smoke-book-epic100"  # the same on SynthKitchens in the EPIC-100 layout
SMOKE_BOOK_DATA_ROOT = ROOT / "_build" / "smoke-book-data-root"  # the same on a dataset root given by --data-root
SMOKE_DATA_ROOT = ROOT / "_build" / "smoke-data-root"  # that root: a SynthKitchens smoke draw in the EPIC-55 layout
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


def build_smoke_book(folder: Path, *args: str) -> Path:
    """``python -m egolib.book --preset smoke --jobs 2 [args]`` in a copy of the checkout at ``folder``; returns
    ``folder`` (the HTML is in ``_build/html``, the driver's log in ``_build/book.log``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for child in folder.iterdir():  # fresh sources; a file deleted from the checkout is gone here too
        if child.name not in KEEP:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for src in _source_files():
        dst = folder / src.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    env = {**os.environ, "PYTHONPATH": str(folder), "MPLBACKEND": "agg"}
    (folder / "_build").mkdir(exist_ok=True)
    log = folder / "_build" / "book.log"
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, "-m", "egolib.book", "--preset", "smoke", "--jobs", "2", *args],
                              cwd=folder, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        pytest.fail(f"the smoke book {' '.join(args)} failed (exit {proc.returncode}); the end of {log}:\n"
                    + "\n".join(log.read_text().splitlines()[-60:]))
    return folder


@pytest.fixture(scope="session")
def smoke_book() -> Path:
    """``python -m egolib.book --preset smoke --jobs 2`` in a copy of the checkout (``_build/smoke-book``);
    returns the copy's root (the HTML is in ``_build/html``, the driver's log in ``_build/book.log``)."""
    return build_smoke_book(SMOKE_BOOK)


@pytest.fixture(scope="session")
def smoke_book_epic100() -> Path:
    """The smoke book on SynthKitchens in the EPIC-100 layout (``--dataset epic100``), in its own copy of the
    checkout (``_build/smoke-book-epic100``: its runs, data and pages never mix with the EPIC-55 book's)."""
    return build_smoke_book(SMOKE_BOOK_EPIC100, "--dataset", "epic100")


@pytest.fixture(scope="session")
def smoke_book_data_root() -> tuple[Path, Path]:
    """The smoke book on a dataset root outside the embedded default (``--data-root``, as a real EPIC-Kitchens-55
    copy is given): a SynthKitchens smoke draw written to ``_build/smoke-data-root`` stands in for the real frames.
    Returns ``(book copy, data root)``."""
    from egolib import synthetic

    if not synthetic.is_generated(SMOKE_DATA_ROOT, "smoke"):
        subprocess.run([sys.executable, "-m", "egolib.synthetic", "--preset", "smoke", "--out", str(SMOKE_DATA_ROOT)],
                       cwd=ROOT, check=True, capture_output=True)
    return build_smoke_book(SMOKE_BOOK_DATA_ROOT, "--data-root", str(SMOKE_DATA_ROOT)), SMOKE_DATA_ROOT


@pytest.fixture(scope="session")
def smoke_book_view(smoke_book: Path, tmp_path_factory: pytest.TempPathFactory):
    """A factory of scratch folders that read the smoke book's data set and trained run folders, so that the chapter
    tests execute on the book's runs instead of training their own; a chapter writes its ``runs/book/`` into the
    scratch folder, and the book's own outputs stay as built, whatever the order of the tests.

    ``view(link=..., copy=..., scores_only=...)`` returns a folder with ``data`` (a link to the book's) and
    ``runs/<name>`` per run named: ``link`` a link to the book's folder (read only), ``copy`` a copy (for a test
    that rewrites it), ``scores_only`` a folder with only the two score files (no checkpoint, no config).
    """

    def view(*, link: tuple[str, ...] = (), copy: tuple[str, ...] = (), scores_only: tuple[str, ...] = ()) -> Path:
        root = tmp_path_factory.mktemp("smoke-view")
        (root / "data").symlink_to(smoke_book / "data", target_is_directory=True)
        (root / "runs").mkdir()
        for name in (*link, *copy, *scores_only):
            if not (smoke_book / "runs" / name / "DONE").is_file():
                pytest.fail(f"the smoke book has no finished run {name}: see {smoke_book / '_build' / 'book.log'}")
        for name in link:
            (root / "runs" / name).symlink_to(smoke_book / "runs" / name, target_is_directory=True)
        for name in copy:
            shutil.copytree(smoke_book / "runs" / name, root / "runs" / name)
        for name in scores_only:
            (root / "runs" / name).mkdir()
            for split in ("s1", "s2"):
                shutil.copy2(smoke_book / "runs" / name / f"scores_{split}.npz", root / "runs" / name)
        return root

    return view


# --------------------------------------------------------------------------------------------------
# Deprecations. pyproject.toml's filterwarnings makes a DeprecationWarning attributed to egolib an error; a library
# that warns at its own line (stacklevel 1, as torchvision.io's image decoders do) is attributed to itself, so a test
# also fails when egolib called the deprecated code directly.

import warnings  # noqa: E402


def egolib_caller(filename: str) -> str | None:
    """``file:line`` of the egolib code that called the code which warned from ``filename`` directly (the first
    frame outside the warning's own package), or None when that caller is not egolib's."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename != filename:
        frame = frame.f_back
    if frame is None:
        return None

    def package(f) -> str:
        return str(f.f_globals.get("__name__", "")).partition(".")[0]

    own = package(frame)
    while frame is not None and package(frame) == own:
        frame = frame.f_back
    if frame is None or package(frame) != "egolib":
        return None
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


@pytest.fixture(autouse=True)
def _deprecated_calls_from_egolib_are_errors():
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        caller = egolib_caller(filename) if issubclass(category, DeprecationWarning | PendingDeprecationWarning) \
            else None
        if caller is not None:
            raise category(f"{message} (egolib calls deprecated code at {caller})")
        if shown is warnings._showwarning_orig:  # pytest records the test's warnings
            warnings._showwarnmsg_impl(warnings.WarningMessage(message, category, filename, lineno, file, line))
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    yield
    warnings.showwarning = shown
