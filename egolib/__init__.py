"""egolib: the thin library behind egobook (models, data, training, metrics, submission files)."""

from egolib.config import RunConfig

__all__ = ["RunConfig"]
__version__ = "0.1.0"
