"""Progress bars for notebooks and logs: ``tqdm.auto``, quiet about its text fallback.

Without ipywidgets (not a dependency: the book renders executed notebooks statically) ``tqdm.auto`` falls back to
text bars and warns once at import, into the first cell of every notebook; the fallback is what we want. With
ipywidgets it warns instead that its notebook bars are experimental. Those two notices are silenced, nothing else:
any other warning at import, a deprecation included, still shows.
"""

import warnings

from tqdm.std import TqdmExperimentalWarning, TqdmWarning

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)  # no ipywidgets
    warnings.filterwarnings("ignore", category=TqdmExperimentalWarning)  # ipywidgets: "notebook mode"
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
