"""Fixtures shared by several test modules, and which tests the fast tier (``./run_tests.sh --fast``) leaves out."""

from __future__ import annotations

import itertools
import warnings

import pytest

# --------------------------------------------------------------------------- the fast tier
# ``./run_tests.sh --fast`` runs ``pytest -m "not slow"``: the tests below get the ``slow`` marker here (besides those
# marked in their modules), chosen from ``pytest --durations=0`` on the smoke profile on a 2-core CPU (2026-12, 841
# tests in 576 s). What stays checks the logic (config, metrics, losses, layers, models, studies on fake runs, docs).

# Whole modules (file names without .py), every test in them.
SLOW_MODULES = {
    "test_notebooks_real",  # runs notebooks 01 and 04-06 on fixture datasets in the DDR and IDRiD layouts (2 min)
    "test_ddp",  # two gloo processes train a model
    "test_worker_pool_submitit",  # smoke trainings as submitit jobs in other processes
}

# Single tests ("module::test", without parameters), by why they are slow.
SLOW_TRAINING = {  # trains a model: smoke runs, overfitting checks, the warm-start base, studies of trained runs
    "test_methods::test_deepmt_dr_overfits_every_stage",
    "test_methods::test_baselines_overfit_four_images",
    "test_methods::test_training_flops_count_each_stage_as_the_trainer_runs_it",
    "test_methods::test_cost_table_smoke",
    "test_fast_path::test_every_method_trains_in_the_fast_path_at_batch_sizes_1_to_9",
    "test_fast_path::test_fast_path_gradients_at_batch_8_match_fp32",
    "test_bench::test_bench_json_fields",
    "test_bench::test_bench_markdown_table",
    "test_bench::test_readme_and_performance_doc_are_generated_from_the_bench_files",
    "test_bench::test_set_changes_the_timed_config_and_names_the_bench_file",
    "test_bench::test_grid_counts_each_runs_training_flops_and_the_floor_they_set",
    "test_grid_queue::test_the_queue_gives_the_serial_results_bit_for_bit",
    "test_grid_queue::test_entries_already_in_the_cache_are_not_trained_again",
    "test_studies_beyond::test_robustness_and_cost_on_smoke_runs",
    "test_studies_beyond::test_beyond_study_reruns_leave_identical_result_tables",
    "test_warm_start::test_warm_stage2_trains_only_stage2_from_the_base_state_and_is_cached_apart",
    "test_warm_start::test_warm_start_with_the_base_config_reproduces_the_base",
    "test_warm_start::test_interrupted_warm_run_resumes",
    "test_experiment_cache::test_real_deepmt_dr_cached_and_reloaded",
    "test_few_labels::test_every_image_labelled_trains_exactly_as_before",
    "test_task_aware_calibration::test_stage2_never_keeps_an_sr_worse_than_stage1",
}
SLOW_PROCESSES = {  # starts other processes: the CLI, run_all.sh, jupytext, worker pools, a process killed mid-epoch
    "test_grid_queue::test_run_all_trains_the_grid_before_the_notebooks_and_stops_when_it_fails",
    "test_notebooks::test_run_all_names_the_failing_notebook",
    "test_notebooks::test_jupytext_sync_repairs_an_edited_notebook",
    "test_run_all_args::test_run_shows_progress_live_names_the_notebook_and_reports_per_profile",
    "test_cli::test_module_entry_point_help_runs",
    "test_worker_pool::test_grid_in_parallel_gives_exactly_the_serial_metrics",
    "test_worker_pool::test_two_processes_race_for_one_entry_one_trains_the_other_waits_and_loads",
    "test_worker_pool::test_errors_in_workers_surface_unchanged",
    "test_worker_pool::test_lock_of_a_killed_process_does_not_block",
    "test_reliability_training::test_sigkill_mid_epoch_then_resume_matches_uninterrupted",
}
SLOW_PIPELINES = {  # runs a command or a study end to end on real models (train / evaluate / predict, Grad-CAM)
    "test_cli::test_train_evaluate_predict_end_to_end",
    "test_cli_reliability::test_predict_goes_past_bad_files_and_summarises",
    "test_cli_reliability::test_disk_full_while_predicting_is_one_error_line",
    "test_cli_reliability::test_checkpoint_of_the_wrong_kind_names_what_to_pass",
    "test_reliability_training::test_cli_refuses_to_overwrite_a_run_or_resume_nothing",
    "test_studies_attention::test_attention_study_tables_and_claims",
    "test_studies_attention::test_c3_rows_carry_the_regime_and_two_distinct_comparisons",
    "test_studies_attention::test_attention_study_over_seeds_averages_each_image_before_the_bootstrap",
    "test_studies_attention::test_visualization_maps_match_forward",
    "test_studies_attention::test_visualize_targets_the_true_grade_where_known",
    "test_studies_attention::test_qualitative_study_and_figures",
    "test_studies_attention::test_real_photo_study_through_predict",
    "test_studies::test_a_rerun_leaves_identical_result_tables",
    "test_studies::test_what_we_see_01_is_written_from_the_numbers",
    "test_studies::test_what_we_see_04_05_06_are_written_from_the_numbers",
    "test_studies::test_few_labels_study_compares_the_gain_with_few_and_with_all_labels",
    "test_studies_ablations::test_a_rerun_leaves_identical_result_tables",
    "test_studies_ablations::test_dial_sweep_gap_gain_share_and_the_negative_control",
    "test_studies_ablations::test_task_aware_study_warm_starts_dedupes_and_claims",
    "test_studies_ablations::test_structure_study_plan_skip_and_scale_check",
    "test_studies_ablations::test_what_we_see_08_is_written_from_the_numbers",
    "test_studies_ablations::test_what_we_see_07_is_written_from_the_numbers",
}
SLOW_TESTS = SLOW_TRAINING | SLOW_PROCESSES | SLOW_PIPELINES


@pytest.hookimpl(tryfirst=True)  # before ``-m "not slow"`` deselects
def pytest_collection_modifyitems(config, items):
    """The ``slow`` marker on :data:`SLOW_MODULES` and :data:`SLOW_TESTS`; a warning for a listed test that its
    module no longer has (renamed or removed), so that the list does not silently go stale."""
    seen = {}
    for item in items:
        module = item.path.stem
        name = getattr(item, "originalname", item.name)
        if module in SLOW_MODULES or f"{module}::{name}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if getattr(item, "module", None) is not None:
            seen.setdefault(module, item.module)
    for entry in sorted(SLOW_TESTS):
        module, name = entry.split("::")
        if module in seen and not hasattr(seen[module], name):
            warnings.warn(pytest.PytestWarning(f"tests/conftest.py SLOW_TESTS names {entry}, which does not exist"))


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


@pytest.fixture
def run_all_sandbox(tmp_path):
    """``make(notebooks)``: :func:`make_run_all_sandbox` in this test's ``tmp_path``."""
    return lambda notebooks: make_run_all_sandbox(tmp_path, notebooks)


def make_run_all_sandbox(tmp_path, notebooks: dict[str, str]) -> dict:
    """``run_all.sh``, ``pyproject.toml`` and ``scripts/`` copied into ``tmp_path`` with stand-in notebooks
    (``{"00_name.ipynb": code}``: a title, the papermill parameters cell, the code), and the environment to run it
    in: this interpreter's venv, a cache under ``tmp_path``, no install, none of the profile / job variables a test
    session sets. Skips where nbformat or papermill is not installed."""
    import os
    import shutil
    import sys
    from pathlib import Path

    nbformat = pytest.importorskip("nbformat")
    if not (Path(sys.prefix) / "bin" / "papermill").exists():
        pytest.skip("papermill is not installed in this environment")
    root = Path(__file__).resolve().parent.parent
    for name in ("run_all.sh", "pyproject.toml"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "scripts", tmp_path / "scripts")
    (tmp_path / "notebooks").mkdir()
    for name, src in notebooks.items():
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("profile = ''")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(src)]
        nb.metadata["kernelspec"] = {"name": "deepmt", "display_name": "deepmt", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / name)
    env = dict(os.environ, DEEPMT_VENV=str(Path(sys.prefix)), DEEPMT_CACHE=str(tmp_path / "cache"), DEEPMT_SKIP_INSTALL="1")
    for name in ("DEEPMT_PROFILE", "DEEPMT_BACKEND", "DEEPMT_JOBS", "DEEPMT_GRID_LOG"):
        env.pop(name, None)
    return env
