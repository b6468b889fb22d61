"""No deprecated API underneath: egolib's modules import without a deprecation warning, nothing hides one, and the
frames are decoded by TorchCodec (torchvision.io's image decoders are deprecated since torchvision 0.29).

At run time, pyproject.toml's ``filterwarnings`` turns a DeprecationWarning raised from egolib into a test error.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import egolib_caller

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "egolib").glob("*.py") if p.stem != "__init__")


def test_every_module_imports_without_a_deprecation_warning() -> None:
    code = ("import importlib, warnings\n"
            "warnings.filterwarnings('error', category=DeprecationWarning, module=r'egolib(\\.|$)')\n"
            "warnings.filterwarnings('error', category=PendingDeprecationWarning, module=r'egolib(\\.|$)')\n"
            f"for name in {MODULES!r}:\n"
            "    importlib.import_module('egolib.' + name)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_no_warning_filter_hides_a_deprecation() -> None:
    filters = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]
    assert "error::DeprecationWarning:egolib.*" in filters
    assert not [f for f in filters if f.startswith("ignore") and "Deprecat" in f]
    for path in [*(ROOT / "egolib").glob("*.py"), ROOT / "tests" / "conftest.py"]:
        text = path.read_text()
        assert not re.search(r"simplefilter\(\s*[\"']ignore[\"']\s*\)", text), f"{path.name} ignores every warning"
        assert not re.search(r"[\"']ignore[\"'][^\n]*Deprecat", text), f"{path.name} hides a deprecation"


def test_frames_are_not_decoded_by_torchvision_io() -> None:
    uses = re.compile(r"from torchvision\.io import|import torchvision\.io|torchvision\.io\.\w+\(")
    users = [p.name for p in (ROOT / "egolib").glob("*.py") if uses.search(p.read_text())]
    assert not users, f"torchvision.io's image decoders are deprecated (torchcodec.decoders replaces them): {users}"


def module(name: str, path: str, source: str, **names: object) -> dict:
    """Run ``source`` as the module ``name`` at ``path`` (what a warning is attributed to); returns its globals."""
    namespace = {"__name__": name, **names}
    exec(compile(source, path, "exec"), namespace)
    return namespace


def test_a_deprecated_library_call_from_egolib_fails() -> None:
    # the library warns at its own line (stacklevel 1): the warning is attributed to it, not to egolib
    lib = module("somelib.io", "/somelib/io.py", "import warnings\ndef old():\n"
                 "    warnings.warn('old() is deprecated', DeprecationWarning)\n")
    user = module("egolib.example", "/egolib/example.py", "def read():\n    return old()\n", old=lib["old"])
    with pytest.raises(DeprecationWarning, match=r"old\(\) is deprecated \(egolib calls deprecated code at "
                                                 r"/egolib/example\.py:2\)"):
        user["read"]()


def test_only_a_direct_call_from_egolib_counts() -> None:
    lib = module("somelib.io", "/somelib/io.py", "def probe(caller):\n    return caller('/somelib/io.py')\n")
    direct = module("egolib.example", "/egolib/example.py", "def read():\n    return probe(caller)\n",
                    probe=lib["probe"], caller=egolib_caller)
    assert direct["read"]() == "/egolib/example.py:2"
    assert lib["probe"](egolib_caller) is None  # a test's own call
    between = module("otherlib.x", "/otherlib/x.py", "def go():\n    return probe(caller)\n", probe=lib["probe"],
                     caller=egolib_caller)
    via = module("egolib.example", "/egolib/example.py", "def read():\n    return go()\n", go=between["go"])
    assert via["read"]() is None  # egolib -> otherlib -> somelib: otherlib's deprecated call, not egolib's
