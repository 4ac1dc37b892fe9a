# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 00 The benchmark and the data
#
# **Supports:** the paper's data setting (HR fundus photo, LR = antialiased bicubic downsampling by 4) and the
# premise behind **Finding 1**: DR grades hinge on small lesions (microaneurysms) that almost vanish at low
# resolution, so grading from LR loses accuracy and super-resolution has something to recover.
#
# No public package ships DR grades or lesion masks, so deepmt generates a synthetic fundus benchmark
# (`deepmt/data/synthetic/`, design rationale in `docs/BENCHMARK.md`); this notebook's measurements and figures
# are in `deepmt/studies/benchmark.py`. Here you will see:
#
# 1. one synthetic image per grade with its lesion masks, and the grading rules;
# 2. the grade distribution (balanced, the default, and DDR-like);
# 3. microaneurysms (MA) and MA-coloured smudges in HR, LR and bicubic close-ups, and their peak contrast
#    measured over many lesions: MA separate from smudges at HR but not at LR;
# 4. how that "lesion information left at LR" moves with the benchmark's dials (smudge matching, scale);
# 5. scikit-image's real fundus photograph through the same preprocessing and degradation.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seed = 0
n_images = 40  # test images whose MA and smudges are measured (smoke: 3)
dial_smudge_matches = [0.0, 0.25, 0.5, 0.8, 1.0]  # data.synth.smudge_match settings of the dial (smoke: 0.5, 1.0)
dial_scales = [2, 4, 8]  # scales of the dial (smoke: the profile's)
dial_images = 12  # test images per dial setting (smoke: 2)

# %%
from deepmt.studies import benchmark as B
from deepmt.studies.benchmark import build_datasets, get_config, grade_rules_text, save_figure, save_table, seed_everything

cfg = get_config(profile or None, {"data.seed": seed, "data.dataset": "synthetic"})
seed_everything(seed)
print(B.describe(cfg))

# %% [markdown]
# ## Data: the cached splits, and the grading rules

# %%
splits = build_datasets(cfg.data)  # generated once, then loaded from the cache
print(grade_rules_text(cfg.data.synth.severe_he_per_quadrant))

# %% [markdown]
# ## Run: grade distributions and lesion contrast at HR and LR
#
# Lesion contrast is measured at the profile's own HR size (`B.measure_config`): the lesions its networks train on.

# %%
study = B.benchmark_study(cfg, splits, n_images=n_images, smudge_matches=dial_smudge_matches, scales=dial_scales,
                          dial_images=dial_images)

# %% [markdown]
# ## Results

# %%
save_table(study.grades, "00_grade_distribution")
save_table(study.contrast_table, "00_ma_smudge_contrast")
save_table(study.dial, "00_lr_information_dial")
save_table(study.lesions.reset_index(), "00_lesions_per_grade")
display(study.lesions)
display(study.contrast_table.round(3))
display(study.dial.round(3))

# %% [markdown]
# ## Figures

# %%
save_figure(B.figure_samples_per_grade(cfg.data), "00_samples_per_grade")
save_figure(B.figure_grade_distribution(study.grades), "00_grade_distribution")
save_figure(B.figure_ma_crops(study.measure_cfg), "00_ma_at_lr")
save_figure(B.figure_contrast(study.contrast), "00_ma_smudge_contrast")
save_figure(B.figure_real_photo(study.measure_cfg.hr_size, cfg.data.scale, study.measure_cfg), "00_real_photo");

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.benchmark.what_we_see`).

# %%
print(B.what_we_see(study))
