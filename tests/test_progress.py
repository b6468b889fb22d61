"""egolib.progress: tqdm.auto's notebook notices are silenced at import, and only they."""

import subprocess
import sys

# A notebook kernel as tqdm.autonotebook recognises one; the script prints every warning raised by ``body``.
NOTEBOOK = """
import importlib.abc, importlib.util, sys, types, warnings
import IPython
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
IPython.get_ipython = lambda: types.SimpleNamespace()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
{body}
print([f"{{w.category.__name__}}: {{w.message}}" for w in caught])
"""
# A tqdm.auto that warns of a deprecation of tqdm's own when imported (a TqdmWarning too).
DEPRECATED = """
    class Deprecated(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            return importlib.util.spec_from_loader(name, self) if name == "tqdm.auto" else None
        def create_module(self, spec):
            return None
        def exec_module(self, module):
            from tqdm.std import TqdmDeprecationWarning
            warnings.warn("an old API", TqdmDeprecationWarning)
            module.tqdm = object
    sys.meta_path.insert(0, Deprecated())
"""


def _warnings(body: str) -> str:
    out = subprocess.run([sys.executable, "-c", NOTEBOOK.format(body=body)], capture_output=True, text=True,
                         check=True)
    return out.stdout


def test_the_notebook_fallback_notice_is_silenced():
    assert "TqdmWarning: IProgress not found" in _warnings("    from tqdm.auto import tqdm")  # tqdm.auto alone
    assert _warnings("    from egolib.progress import tqdm").strip() == "[]"


def test_other_warnings_at_import_still_show():
    assert "TqdmDeprecationWarning: an old API" in _warnings(DEPRECATED + "    from egolib.progress import tqdm")
