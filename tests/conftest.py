"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh experiment cache (``DEEPMT_CACHE``) for the test module that asks for it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPMT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
