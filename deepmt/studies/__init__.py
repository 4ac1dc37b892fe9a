"""Studies: the thin layer between the notebooks and the package.

Each numbered notebook calls one or two functions of a module here; the functions compose cached
:func:`deepmt.experiments.run_experiment` results into the tables, claims and figure data the paper's
analyses need. No training code lives here, and no notebook re-implements what is here.

* :mod:`deepmt.studies.common`   – the study config, seeds, running/collecting methods, effects with CIs.
* :mod:`deepmt.studies.benchmark` – the synthetic benchmark measured and shown (notebook 00).
* :mod:`deepmt.studies.tables`   – Finding 1 and the grading / ISR / segmentation tables (notebooks 01, 04-06).
* :mod:`deepmt.studies.few_labels` – few labels, many unlabelled HR images (notebook 01).
* :mod:`deepmt.studies.lesion_identity` – does an MA map tell MAs from smudges? (notebook 01, the negative
  control's diagnostic).
* :mod:`deepmt.studies.ablations` – task-aware loss and structure ablations (notebooks 07, 08).
* :mod:`deepmt.studies.attention` – Finding 2: visualization maps vs lesion masks (notebook 02); its figures in
  :mod:`deepmt.studies.attention_figures`.
* :mod:`deepmt.studies.training` – the staged schedule and its curves (notebook 03); its figures in
  :mod:`deepmt.studies.training_figures`.
* :mod:`deepmt.studies.qualitative` – paper-style qualitative figures (notebook 09).
* :mod:`deepmt.studies.beyond`   – robustness, calibration, compute cost (notebook 10).
"""
