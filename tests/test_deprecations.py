"""No deprecated API underneath: egolib's modules import without a deprecation warning, nothing hides one, and the
frames are decoded by TorchCodec (torchvision.io's image decoders are deprecated since torchvision 0.29).

At run time, pyproject.toml's ``filterwarnings`` turns a DeprecationWarning raised from egolib into a test error.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
