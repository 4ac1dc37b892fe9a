"""Studies: the thin layer between the notebooks and the package.

Each numbered notebook imports one module here, its own (``tests/test_layers.py``), which holds the notebook's run,
tables and "what we see" and re-exports whatever else the notebook calls; the functions compose cached
:func:`deepmt.experiment_cache.run_experiment` results into the tables, claims and figure data the paper's
analyses need. No training code lives here, and no notebook re-implements what is here.

Notebook -> study module:

* 00 :mod:`deepmt.studies.benchmark` – the synthetic benchmark measured and shown.
* 01 :mod:`deepmt.studies.finding1` – Finding 1; with :mod:`~deepmt.studies.dial` (the LR-information dial),
  :mod:`~deepmt.studies.few_labels` (few labels, many unlabelled HR images), :mod:`~deepmt.studies.lesion_identity`
  (does an MA map tell MAs from smudges? the control ``negative:identity``) and :mod:`~deepmt.studies.pathway`
  (DeepMT-DR's grading pathway on HR and bicubic images: the control ``gap:deepmt_dr``).
* 02 :mod:`deepmt.studies.finding2` – Finding 2: visualization maps vs lesion masks (the maps:
  :mod:`~deepmt.studies.attention`).
* 03 :mod:`deepmt.studies.training` – the staged schedule and its curves (tables: :mod:`~deepmt.studies.training_tables`,
  figures: :mod:`~deepmt.studies.training_figures`, convergence: :mod:`~deepmt.studies.convergence`).
* 04 :mod:`deepmt.studies.grading_table`, 05 :mod:`deepmt.studies.isr_table`, 06 :mod:`deepmt.studies.segmentation_table`
  – the paper's tables (what they share: :mod:`~deepmt.studies.paper_tables`).
* 07 :mod:`deepmt.studies.ablation_loss`, 08 :mod:`deepmt.studies.ablation_structure` – the ablations (what they
  share: :mod:`~deepmt.studies.ablations`).
* 09 :mod:`deepmt.studies.qualitative` – paper-style qualitative figures.
* 10 :mod:`deepmt.studies.beyond` – robustness (:mod:`~deepmt.studies.robustness`), calibration, compute cost.
* 11 :mod:`deepmt.studies.verdicts` – the claims figure and what the numbers say.

Shared by all: :mod:`deepmt.studies.common` (the study config, seeds, running/collecting methods, effects with CIs).
:mod:`deepmt.studies.summary` writes the README's claim summary and docs/RESULTS.md from ``results/``.
"""
