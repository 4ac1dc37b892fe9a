# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 07 Ablation of the task-aware loss
#
# **Reproduces:** the paper's ablation of its main novelty, the task-aware loss (claim **C5**: *the task-aware
# loss improves grading and super-resolution in lesion regions*). In stage 2 (joint fine-tuning) the ISR
# subnet is trained with
#
# ISR loss = MSE(SR, HR) + TV + **seg_aware** · MSE(seg(SR), seg(HR)) + **cls_aware** · MSE(vis(SR), vis(HR))
# + **grading_feedback** · grading loss, and grading loss = CE + **vis_consistency** · MSE(vis map, lesion map)
#
# (paper weights 1, 10, 1, 0.3). We switch each term off in turn, all three feedback terms together ("without
# the task-aware loss" = plain joint fine-tuning, claim C5), and compare the two weightings of the feedback:
#
# * **the authors' weights** (`loss.feedback_scaling="authors"`): beside a mean-over-pixels MSE they make the
#   feedback's gradient on the ISR parameters tens to thousands of times the pixel term's, so stage 2 trains the ISR
#   almost only to please the later subnets (its PSNR can fall below bicubic);
# * **calibrated** (the default): each feedback term is rescaled at the start of stage 2 so that its gradient on the
#   ISR is `loss.feedback_ratio` times the pixel term's, measured over the first stage-2 batches.
#
# The table of gradient norms shows both. The ratio is swept (`feedback_ratios`) and the one with the best
# *validation* QWK is named (the rule for the calibrated default; test is never used to choose). Claim C5 uses
# the calibrated loss at the config's ratio.
#
# **How the variants are trained.** The base is the full DeepMT-DR of every other notebook (same config and
# seed, from the experiment cache). The three feedback terms act in stage 2 only, so those variants are
# *warm-started* from the base run at stage 2: same weights and random-number state as the base when its stage 2
# began, so they share stages 1a/1b with the base and **their differences come from stage 2 alone**.
# `vis_consistency` already acts in stage 1b, so that variant is warm-started at stage 1b. (A warm start with the
# base's own config reproduces the base exactly; `tests/test_warm_start.py`.)
#
# You will see: how each variant was trained (and, apart, how long); grading (accuracy, QWK, macro-F1), ISR inside lesion
# regions (PSNR/SSIM), segmentation (AUPR, Dice, MA AUPR) per variant; paired effects *variant − full* with 95%
# bootstrap intervals over test images; the weight sweep; and the C5 rows of the claims table. The intervals
# cover test-image sampling, not training noise: with one seed, a small "significant" effect may still be noise.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seeds = [0, 1, 2]  # training seeds (each variant is warm-started from the base run of the same seed)
dataset = "synthetic"
data_root = ""
device = "auto"
feedback_ratios = [0.1, 0.5, 2.0]  # sweep of loss.feedback_ratio (calibrated loss; the config's ratio is the base)
cls_aware_weights = []  # optional sweep of loss.cls_aware; only meaningful with loss.feedback_scaling="authors"
seg_aware_weights = []  # optional sweep of loss.seg_aware, e.g. [0, 1, 10] (1 = paper)
n_boot = 1000

# %%
from deepmt.studies import ablation_loss as A
from deepmt.studies.ablation_loss import describe_config, save_figure, save_table, study_config, study_seeds

cfg = study_config(profile, dataset, data_root, device)
seeds = study_seeds(cfg, seeds)
print(describe_config(cfg), f"| seeds {seeds}")
print(A.describe_loss(cfg))

# %% [markdown]
# ## Run
# The benchmark's splits are cached (notebook 00); every variant is measured on the same test images as the base.
# The base comes from the cache (shared with notebooks 01-06); each variant is warm-started from it.

# %%
res = A.task_aware_study(cfg, seeds, cls_aware_weights, seg_aware_weights, feedback_ratios, n_boot=n_boot)
display(res["plan"])
display(res["timing"].round(1))

# %% [markdown]
# ## Results
# `summary`: mean ± std over seeds. `effects`: *variant − full DeepMT-DR* on the same test images, 95% CI.
# Training seconds go to `results/timing/` (a rerun changes them and nothing else).

# %%
save_table(res["plan"], "07_plan")
save_table(res["timing"], "timing/07_train_seconds")
save_table(res["summary"], "07_summary")
save_table(res["effects"], "07_effects_vs_full")
for term, sweep in res["sweeps"].items():
    save_table(sweep, f"07_sweep_{term}")
save_table(res["claims"], "07_claims")
save_table(res["gradients"], "07_feedback_gradients")
display(res["gradients"].round(6))
print(f"feedback ratio with the best validation QWK: {res['ratio_on_validation']:g} (config: {res['feedback_ratio']:g})")
display(res["summary"][["label", "trained", *A.METRICS]])
display(res["wide"])
for term, sweep in res["sweeps"].items():
    display(sweep[["weight", "variant", *A.METRICS]].round(3))
display(res["claims"][["id", "metric", "effect", "lo", "hi", "n_seeds", "verdict"]])

# %% [markdown]
# ## Figures

# %%
save_figure(A.plot_effects(res["effects"], ["accuracy", "qwk", "psnr_lesion", "ssim_lesion", "aupr"], res["ablation"].labels,
                           "Task-aware loss ablation: variant − full DeepMT-DR (test, 95% CI)"), "07_ablation_effects")
for term, sweep in res["sweeps"].items():
    save_figure(A.plot_sweep(sweep, ["accuracy", "qwk", "psnr_lesion", "aupr"], f"Weight sweep of loss.{term}"), f"07_sweep_{term}")

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.ablation_loss.what_we_see_07`).

# %%
print(A.what_we_see_07(res))
