"""Progress bars for notebooks and logs: ``tqdm.auto``, quiet about its text fallback.

Without ipywidgets (not a dependency: the book renders executed notebooks statically) ``tqdm.auto`` falls back to
text bars and warns once at import, into the first cell of every notebook; the fallback is what we want.
"""

import warnings

from tqdm.std import TqdmWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)  # tqdm's own notices only: a deprecation still shows
    from tqdm.auto import tqdm

__all__ = ["tqdm"]
