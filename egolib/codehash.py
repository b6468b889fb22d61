"""Which library source a piece of code depends on, as one hash.

A run folder or an executed chapter is "current" when the egolib code it ran is unchanged. Hashing every
file of the library would call a change to a plotting helper a change to training; instead the hash covers
the modules that the code imports, directly or through other egolib modules (found with ``ast``, so imports
inside functions count too), plus ``egolib/__init__.py``, which every import runs.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import threading
from collections.abc import Iterable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE = PACKAGE_DIR.name  # "egolib"
PARSE_LOCK = threading.Lock()  # ast.parse from several threads at once can fail in CPython 3.11 (SystemError)


def imported_modules(source: str) -> set[str]:
    """The egolib modules (short names, e.g. ``"train"``) that Python ``source`` imports.

    Notebook lines that are not Python (``%matplotlib inline``, ``!ls``) are ignored.
    """
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    with PARSE_LOCK:
        tree = ast.parse(code)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from egolib import train, runs` names modules; `from egolib.train import fit` names one
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and (PACKAGE_DIR / f"{parts[1]}.py").exists():
                found.add(parts[1])
    return found


def closure(modules: Iterable[str]) -> list[str]:
    """``modules`` and every egolib module they import, transitively, sorted; ``__init__`` always included."""
    todo, seen = [*modules, "__init__"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = PACKAGE_DIR / f"{name}.py"
        if not path.exists():
            raise ValueError(f"no module {PACKAGE}.{name} (looked for {path.name} in the {PACKAGE} package)")
        seen.add(name)
        todo.extend(_module_imports(path, *_stamp(path)) - seen)
    return sorted(seen)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=256)
def _module_imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """``imported_modules`` of a library file, remembered while the file is unchanged (same time and size)."""
    return frozenset(imported_modules(path.read_text()))


def source_hash(modules: Iterable[str]) -> str:
    """A 16-hex-digit hash of the source files of ``closure(modules)`` (names and bytes)."""
    digest = hashlib.sha256()
    for name in closure(modules):
        digest.update(name.encode() + b"\0" + (PACKAGE_DIR / f"{name}.py").read_bytes() + b"\0")
    return digest.hexdigest()[:16]
