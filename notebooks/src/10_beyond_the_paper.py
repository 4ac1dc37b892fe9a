# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 10 Beyond the paper: robustness, calibration, compute cost
#
# **Goes beyond** the paper (which evaluates on bicubic x4 LR images only and reports neither calibration nor
# cost) with three questions a user of DeepMT-DR would ask, answered on the cached runs (evaluation only,
# nothing is trained here):
#
# 1. **Robustness.** How do DeepMT-DR, the grader on bicubic images and the Foo-style seg+grade multi-task net
#    fare when the LR test images are worse than in training: extra Gaussian blur before downsampling, Gaussian
#    noise, JPEG compression? The same test images are re-degraded from their HR originals
#    (`deepmt.studies.beyond.DegradedDataset`; why not a regenerated split: see the module doc), and accuracy /
#    QWK are plotted against severity.
# 2. **Calibration.** Are the predicted grade probabilities trustworthy? Expected calibration error (ECE, with a
#    bootstrap CI), Brier score, NLL and reliability diagrams from each run's cached test predictions.
# 3. **Compute.** Parameters and FLOPs per image, training images/s of the cached runs and inference images/s
#    measured on this machine (named below). Seconds and images/s change from run to run while every metric stays
#    the same, so they are saved apart, under `results/timing/` and `figures/timing/`.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seed = 0
dataset = "synthetic"
data_root = ""
device = "auto"
methods = ["deepmt_dr", "grader_bicubic", "foo_mt"]
blur_sigmas = [0.0, 1.0, 2.0]  # Gaussian blur (HR px) before the x4 downsampling
noise_stds = [0.0, 0.02, 0.05]  # additive Gaussian noise on the LR image ([0, 1] units)
jpeg_qualities = [95, 50, 20]  # JPEG quality of the LR image (the clean level has no JPEG)
n_bins = 10  # confidence bins of the ECE and the reliability diagrams
n_boot = 1000
timing_images = 128  # test images per inference timing pass (best of timing_repeats passes)
timing_repeats = 3
timing_threads = 0  # torch CPU threads for the inference timings; 0 = torch's default

# %%
from deepmt.studies import beyond as B
from deepmt.studies.beyond import describe_config, run_methods, save_figure, save_table, study_config

cfg = study_config(profile, dataset, data_root, device)
print(describe_config(cfg))

# %% [markdown]
# ## Run: the cached models, evaluated on every level; calibration; cost
#
# The test split is the cached one (notebook 00); each degraded level remakes its LR images from their HR originals.
# Under the smoke profile only the most severe level of each kind is run, and inference is timed on a few images.

# %%
runs = run_methods(methods, cfg, seeds=[seed])
study = B.beyond_study({m: rs[0] for m, rs in runs.items()}, cfg, blur_sigmas, noise_stds, jpeg_qualities, n_bins=n_bins,
                       n_boot=n_boot, seed=seed, timing_images=timing_images, timing_repeats=timing_repeats,
                       timing_threads=timing_threads, device=device)
display(study.levels)

# %% [markdown]
# ## Results

# %%
save_table(study.robustness, "10_robustness")
save_table(study.drops, "10_robustness_drops")
save_table(study.calibration, "10_calibration")
save_table(study.reliability, "10_reliability")
save_table(study.cost, "10_cost")
save_table(study.robustness_seconds, "timing/10_robustness_seconds")
save_table(study.throughput, "timing/10_throughput")
save_table(study.machine, "timing/10_machine")
display(study.robustness[["label", "level", "accuracy", "qwk", "ece", "psnr", "aupr"]].round(3))
display(study.calibration.round(3))
display(study.cost[["label", "params_total", "gflops_forward", "gflops_train", "test_qwk"]].round(3))
display(study.throughput[["label", "train_img_s", "infer_img_s", "infer_img_s_grade_only", "threads", "load_avg_1min"]].round(3))
display(study.machine)

# %% [markdown]
# ## Figures

# %%
save_figure(B.figure_robustness(study.robustness, ("accuracy", "qwk")), "10_robustness")
save_figure(B.figure_reliability(study.reliability, study.calibration), "10_reliability")
save_figure(B.figure_cost(study.cost), "10_cost")
save_figure(B.figure_throughput(study.throughput), "timing/10_throughput");

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.beyond.what_we_see`).

# %%
print(B.what_we_see(study))
