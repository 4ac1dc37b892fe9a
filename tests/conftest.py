"""Fixtures shared by several test modules."""

from __future__ import annotations

import itertools

import pytest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh experiment cache (``DEEPMT_CACHE``) for the test module that asks for it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPMT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A fresh experiment cache (``DEEPMT_CACHE``) for each test that asks for it
    (``pytestmark = pytest.mark.usefixtures("fresh_cache")``)."""
    monkeypatch.setenv("DEEPMT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def cfg():
    """The smoke profile on the CPU, for tests that build methods or study inputs from a config."""
    from deepmt.config import get_config

    return get_config("smoke", {"train.device": "cpu"})


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder in which no file can be created. ``chmod 555`` where it binds; tests often run as root, where it
    does not, and then ``/sys`` (sysfs refuses new files even to root). Skipped where neither refuses."""
    import os
    import tempfile
    from pathlib import Path

    def refuses(folder) -> bool:
        try:
            with tempfile.TemporaryFile(dir=folder):
                return False
        except OSError:
            return True

    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if refuses(folder):
            yield folder
            return
        if os.path.isdir("/sys") and refuses("/sys"):
            yield Path("/sys")
            return
        pytest.skip("no folder here refuses new files (root without /sys)")
    finally:
        folder.chmod(0o755)


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    """``final.pt`` of an untrained smoke DeepMT-DR (fp32, CPU), written as ``train`` writes it: for tests of
    what ``predict`` / ``evaluate`` do with their inputs and outputs, where the weights do not matter."""
    from deepmt.config import get_config
    from deepmt.engine.checkpoint import config_json, save_checkpoint
    from deepmt.models.methods import build_method
    from deepmt.utils import seed_everything

    cfg = get_config("smoke", {"train.device": "cpu", "train.precision": "fp32"})
    seed_everything(0)
    method = build_method("deepmt_dr", cfg)
    path = tmp_path_factory.mktemp("untrained") / "final.pt"
    save_checkpoint(path, {"method": "deepmt_dr", "config": config_json(cfg), "class_counts": None, "kind": "final",
                           "model": method.state_dict(), "stage_index": len(method.stages), "stage": "done"})
    return path


@pytest.fixture
def result_tables(tmp_path):
    """``write(result, timing=("timing",))`` -> ``{name: bytes}``: every table of a study's ``result`` (a dict or a
    dataclass; its DataFrames, also those one dict deep) except the ``timing`` ones, written as the notebooks write
    them (:func:`deepmt.reporting.save_table`) into a fresh folder. Two runs that differ only in how long they took
    must give the same bytes."""
    import dataclasses

    import pandas as pd

    from deepmt.reporting import save_table

    calls = itertools.count()

    def write(result, timing=("timing",)) -> dict[str, bytes]:
        items = vars(result) if dataclasses.is_dataclass(result) else dict(result)
        out = {}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DEEPMT_RESULTS", str(tmp_path / f"results_{next(calls)}"))
            for name, value in items.items():
                for sub, df in (value.items() if isinstance(value, dict) else [("", value)]):
                    if isinstance(df, pd.DataFrame) and name not in timing:
                        key = f"{name}_{sub}" if sub else name
                        out[key] = save_table(df, key).read_bytes()
        return out

    return write


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a test module of tiny tensors: as fast, and no spin-waiting when the
    2 cores are shared (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def photo(tmp_path):
    """A colour fundus photo (``photos/eye.png``, 96 x 128 px: a little above the smoke model's 64 px)."""
    from PIL import Image

    from fixtures_real import fundus_array

    path = tmp_path / "photos" / "eye.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(fundus_array(0, 96, 128)).save(path)
    return path
