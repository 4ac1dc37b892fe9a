"""Errors meant for the user. The CLI prints them as one clear line, without a traceback.

Each message names the file (or setting) and the problem, e.g.
``DataError("IDRiD/B. Disease Grading/.../IDRiD_001.jpg: truncated JPEG (cannot decode)")``.
"""


class DeepMTError(Exception):
    """Base class of every error deepmt raises on purpose."""


class DataError(DeepMTError, ValueError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ConfigMismatchError(DeepMTError):
    """A checkpoint or cache entry was made with a different config."""


class TrainingError(DeepMTError, RuntimeError):
    """Training cannot go on (e.g. a NaN/Inf loss term)."""
