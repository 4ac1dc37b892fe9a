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


class SettingError(ConfigMismatchError, KeyError, ValueError):
    """A setting (``--set KEY=VALUE``, a notebook override, ``DEEPMT_PROFILE``) names no config field, or has a value
    its field does not allow. Also a ``KeyError``/``ValueError``, as config overrides raised before."""

    __str__ = Exception.__str__  # KeyError would quote the message


class TrainingError(DeepMTError, RuntimeError):
    """Training cannot go on (e.g. a NaN/Inf loss term)."""
