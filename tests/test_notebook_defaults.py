"""The notebooks' parameters cells repeat the code's defaults, and must keep them (issue 28, item 5).

A parameters cell holds literals only (papermill injects parameters there), so a notebook cannot write
``seeds = SEEDS``: it repeats ``[0, 1, 2]``. :data:`DEFAULTS` maps every parameter of every notebook to the default
in the code that it mirrors (a named constant of the studies package, or the default of the study function it is
passed to); a literal that differs fails here, unless its line says why with ``# override: <why>``. A parameter that
maps to nothing fails too, so a new parameter gets its default in the code and its entry here.

Read from the jupytext sources ``notebooks/src/NN_*.py`` (tests/test_notebooks.py keeps the ``.ipynb`` equal to them).
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from pathlib import Path
from typing import Any, Callable

import pytest

from deepmt.config import Config
from deepmt.studies import (
    ablation_loss,
    ablation_structure,
    attention,
    benchmark,
    beyond,
    dial,
    few_labels,
    finding1,
    grading_table,
    isr_table,
    qualitative,
    segmentation_table,
    training,
)
from deepmt.studies.common import SEEDS, study_config

SOURCES = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
#: the comment that lets a literal differ from its default; the reason after the colon is required
OVERRIDE = re.compile(r"#\s*override:\s*\S")
PARAMETERS_CELL = re.compile(r'^# %%.*\btags=\[[^\]]*"parameters"')


def default(func: Callable[..., Any], name: str) -> Any:
    """The default of ``func``'s parameter ``name``: what a notebook that passes it on mirrors."""
    value = inspect.signature(func).parameters[name].default
    assert value is not inspect.Parameter.empty, f"{func.__qualname__}({name}) has no default"
    return value


#: what :func:`deepmt.studies.common.study_config` makes of a notebook's data and device parameters
CONFIG = {name: default(study_config, name) for name in ("profile", "dataset", "data_root", "device")}

#: notebook -> {parameter: the code's default it mirrors}
DEFAULTS: dict[str, dict[str, Any]] = {
    "00_benchmark": {
        "profile": CONFIG["profile"],
        "seed": Config().data.seed,  # data.seed
        "n_images": default(benchmark.benchmark_study, "n_images"),
        "dial_smudge_matches": benchmark.DIAL_SMUDGE_MATCHES,
        "dial_scales": benchmark.DIAL_SCALES,
        "dial_images": default(benchmark.benchmark_study, "dial_images"),
    },
    "01_finding1_isr_helps": {
        **CONFIG,
        "seeds": SEEDS,
        "seg_seeds": SEEDS,  # the segmentation U-Nets of notebook 06, same entries
        "dial": dial.DIAL_SETTINGS,
        "dial_seeds": default(finding1.finding1, "dial_seeds"),
        "negative_control_seeds": SEEDS,
        "few_labels_fraction": few_labels.LABEL_FRACTION,
        "few_labels_seeds": SEEDS,
        "n_boot": default(finding1.finding1, "n_boot"),
    },
    "02_finding2_lesions_vs_attention": {
        **CONFIG,
        "seeds": SEEDS,
        "seed": default(attention.attention_study, "seed"),
        "n_images": default(attention.attention_study, "n_images"),
        "n_random": default(attention.attention_study, "n_random"),
        "dilation_px": default(attention.attention_study, "dilation"),
        "target": default(attention.attention_study, "target"),
    },
    "03_training_deepmt_dr": {**CONFIG, "seeds": SEEDS, "baselines": training.BASELINES},
    "04_grading_table": {**CONFIG, "seeds": SEEDS, "n_boot": default(grading_table.grading_table, "n_boot")},
    "05_isr_table": {**CONFIG, "seeds": SEEDS, "n_boot": default(isr_table.isr_table, "n_boot")},
    "06_segmentation_table": {**CONFIG, "seeds": SEEDS, "n_boot": default(segmentation_table.segmentation_table, "n_boot")},
    "07_ablation_task_aware_loss": {
        **CONFIG,
        "seeds": SEEDS,
        "feedback_ratios": ablation_loss.FEEDBACK_RATIOS,
        "cls_aware_weights": default(ablation_loss.task_aware_study, "cls_aware_weights"),
        "seg_aware_weights": default(ablation_loss.task_aware_study, "seg_aware_weights"),
        "n_boot": default(ablation_loss.task_aware_study, "n_boot"),
    },
    "08_ablation_structure": {
        **CONFIG,
        "seeds": ablation_structure.STRUCTURE_SEEDS,
        "c7_seeds": SEEDS,
        "pathway_seeds": list(ablation_structure.PATHWAY_SEEDS),
        "scales": ablation_structure.STRUCTURE_SCALES,
        "unsupervised": ablation_structure.UNSUPERVISED,
        "mask_fraction": ablation_structure.MASK_FRACTION,
        "n_boot": default(ablation_structure.structure_study, "n_boot"),
    },
    "09_qualitative": {
        **CONFIG,
        "seed": SEEDS[0],  # the first seed's runs, shared with the other notebooks
        "n_crops": default(qualitative.qualitative_study, "n_crops"),
        "lesion": default(qualitative.qualitative_study, "lesion"),
    },
    "10_beyond_the_paper": {
        **CONFIG,
        "seed": SEEDS[0],
        "methods": beyond.METHODS,
        "blur_sigmas": beyond.BLUR_SIGMAS,
        "noise_stds": beyond.NOISE_STDS,
        "jpeg_qualities": beyond.JPEG_QUALITIES,
        "n_bins": default(beyond.beyond_study, "n_bins"),
        "n_boot": default(beyond.beyond_study, "n_boot"),
        "timing_images": default(beyond.beyond_study, "timing_images"),
        "timing_repeats": default(beyond.beyond_study, "timing_repeats"),
        "timing_threads": default(beyond.beyond_study, "timing_threads"),
    },
    "11_claims": {name: CONFIG[name] for name in ("profile", "dataset", "data_root")},
}


def parameters_cell(text: str) -> str:
    """The source of the cell tagged ``parameters`` in a jupytext percent-format notebook (up to the next ``# %%``)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if PARAMETERS_CELL.match(line)]
    assert len(starts) == 1, f"expected one cell tagged 'parameters', found {len(starts)}"
    end = next((i for i in range(starts[0] + 1, len(lines)) if lines[i].startswith("# %%")), len(lines))
    return "".join(lines[starts[0] + 1:end])


def parameters(cell: str) -> dict[str, tuple[Any, bool]]:
    """{name: (literal value, whether one of its lines carries an ``# override:`` comment)} of a parameters cell."""
    marked = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(cell).readline)
              if tok.type == tokenize.COMMENT and OVERRIDE.match(tok.string)}
    out = {}
    for node in ast.parse(cell).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"line {node.lineno}: a parameters cell assigns one literal to one name per statement"
        lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        out[node.targets[0].id] = (ast.literal_eval(node.value), bool(lines & marked))
    return out


def _plain(value: Any) -> Any:
    """Tuples as lists (a cell writes lists, the code tuples), recursively."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def problems(cell: str, defaults: dict[str, Any]) -> list[str]:
    """What is wrong with a parameters cell against its defaults (empty: nothing)."""
    out = []
    params = parameters(cell)
    for name, (value, override) in params.items():
        if name not in defaults:
            out.append(f"{name}: mirrors no default in the code; give it one (a study constant or a function default) "
                       "and map it in tests/test_notebook_defaults.py")
        elif _plain(value) != _plain(defaults[name]) and not override:
            out.append(f"{name} = {value!r}, but the code's default is {defaults[name]!r}; use the code's value, change "
                       "the code's default, or say why on that line with '# override: <why>'")
        elif _plain(value) == _plain(defaults[name]) and override:
            out.append(f"{name} = {value!r} equals the code's default but says '# override:'; remove the comment")
    out += [f"{name}: mapped here but not a parameter of the notebook" for name in defaults if name not in params]
    return out


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_parameters_cell_repeats_the_code_defaults(path):
    assert path.stem in DEFAULTS, f"{path.name}: add its parameters to DEFAULTS"
    assert problems(parameters_cell(path.read_text()), DEFAULTS[path.stem]) == []


def test_every_mapped_notebook_exists():
    assert sorted(DEFAULTS) == [p.stem for p in SOURCES]


def test_the_check_can_fail():
    defaults = {"profile": "", "seeds": (0, 1, 2), "n_boot": 1000}
    assert problems('profile = ""\nseeds = [0, 1, 2]\nn_boot = 1000  # bootstrap resamples\n', defaults) == []
    differs = problems('profile = ""\nseeds = [0, 1]\nn_boot = 1000\n', defaults)
    assert len(differs) == 1 and differs[0].startswith("seeds = [0, 1], but the code's default is (0, 1, 2)")
    assert problems('profile = ""\nseeds = [0]  # override: one seed is enough here\nn_boot = 1000\n', defaults) == []
    assert problems('profile = ""\nseeds = [0]  # override:\nn_boot = 1000\n', defaults) != []  # a reason is required
    assert problems('profile = ""\nseeds = [0,\n         1]  # override: two seeds\nn_boot = 1000\n', defaults) == []
    stale = problems('profile = ""\nseeds = [0, 1, 2]  # override: no longer\nn_boot = 1000\n', defaults)
    assert len(stale) == 1 and "remove the comment" in stale[0]
    assert problems('profile = "# override: in a string"\nseeds = [0, 1, 2]\nn_boot = 1000\n', {**defaults, "profile": "x"})
    unmapped = problems('profile = ""\nseeds = [0, 1, 2]\nn_boot = 1000\nextra = 3\n', defaults)
    assert len(unmapped) == 1 and unmapped[0].startswith("extra: mirrors no default")
    missing = problems('profile = ""\nseeds = [0, 1, 2]\n', defaults)
    assert missing == ["n_boot: mapped here but not a parameter of the notebook"]
    text = '# %% [markdown]\n# x\n\n# %% tags=["parameters"]\nprofile = ""\n\n# %%\nprint(1)\n'
    assert parameters_cell(text) == 'profile = ""\n\n'


def test_notebook_03_trains_every_other_method_the_tables_use():
    """Notebook 03's ``baselines`` (:data:`deepmt.studies.training.BASELINES`) are the methods the other studies train
    besides DeepMT-DR, so that notebook 03 shows every run the claims and tables rest on."""
    from deepmt.studies import lesion_identity

    used = {*grading_table.GRADING_BASELINES, *grading_table.GRADING_REFERENCES, *isr_table.ISR_METHODS,
            *segmentation_table.SEG_METHODS,
            *dial.DIAL_METHODS, *segmentation_table.DICE_EMPTY_METHODS, *lesion_identity.METHODS, *qualitative.SR_METHODS,
            *beyond.METHODS}
    assert set(training.BASELINES) == used - {"deepmt_dr", "bicubic"}
    assert len(set(training.BASELINES)) == len(training.BASELINES)
