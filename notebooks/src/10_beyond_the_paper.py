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
#    measured on this machine (named below).

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
import numpy as np
import pandas as pd

from deepmt.data import build_datasets
from deepmt.reporting import save_figure, save_table
from deepmt.studies import beyond as B
from deepmt.studies.common import describe_config, label, run_methods, study_config
from deepmt.utils import seed_everything

cfg = study_config(profile, dataset, data_root, device)
seed_everything(seed)
smoke = cfg.profile == "smoke"
if smoke:  # mechanics only: the most severe level of each kind, few timing images
    blur_sigmas, noise_stds, jpeg_qualities = blur_sigmas[-1:], noise_stds[-1:], jpeg_qualities[-1:]
    n_boot, timing_images, timing_repeats = 200, 8, 1
print(describe_config(cfg))

# %% [markdown]
# ## Data: the test split and its degraded versions

# %%
test = build_datasets(cfg.data, ("test",))["test"]
levels = B.severity_levels(cfg, blur_sigmas, noise_stds, jpeg_qualities)
grades = np.asarray([int(test[i]["grade"]) for i in range(len(test))]) if getattr(test, "grades", None) is None else np.asarray(test.grades)
print(f"test split: {len(test)} images, {int((grades >= 0).sum())} graded; {len(levels) - 1} degraded levels + clean")
display(levels)

# %% [markdown]
# ## Run: the cached models, evaluated on every level; calibration; cost

# %%
runs = run_methods(methods, cfg, seeds=[seed])
results = {m: rs[0] for m, rs in runs.items()}
robust = B.robustness(results, test, cfg, levels, seed=seed)
drops = pd.concat([B.robustness_drops(robust, m) for m in ("accuracy", "qwk")], ignore_index=True)
calibration = B.calibration_table(results, n_bins=n_bins, n_boot=n_boot, seed=seed)
reliability = B.reliability_table(results, n_bins=n_bins)
machine = B.machine_table(device)
cost = B.cost_table(results, test, cfg, max_images=timing_images, repeats=timing_repeats, threads=timing_threads)

# %% [markdown]
# ## Results

# %%
save_table(robust, "10_robustness")
save_table(drops, "10_robustness_drops")
save_table(calibration, "10_calibration")
save_table(reliability, "10_reliability")
save_table(cost, "10_cost")
save_table(machine, "10_machine")
display(robust[["label", "level", "accuracy", "qwk", "ece", "psnr", "aupr", "eval_seconds"]].round(3))
display(calibration.round(3))
display(cost[["label", "params_total", "gflops_forward", "gflops_train", "train_img_s", "infer_img_s",
              "infer_img_s_grade_only", "test_qwk"]].round(3))
display(machine)

# %% [markdown]
# ## Figures

# %%
save_figure(B.figure_robustness(robust, ("accuracy", "qwk")), "10_robustness")
save_figure(B.figure_reliability(reliability, calibration), "10_reliability")
save_figure(B.figure_cost(cost), "10_cost");

# %% [markdown]
# ## What we see

# %%
mach = dict(zip(machine["item"], machine["value"]))
text = []
q = drops[drops.metric == "qwk"]
if q["clean"].notna().any():
    per = []
    for name, g in q.groupby("method", sort=False):
        worst = g.loc[g["change"].idxmin()] if g["change"].notna().any() else None
        per.append(f"{label(name)} goes from QWK {g['clean'].iloc[0]:.3f} on clean images to "
                   + ", ".join(f"{r.severe:.3f} at {r.level}" for r in g.itertuples())
                   + (f" (largest drop: {worst['change']:+.3f}, {worst['kind']})" if worst is not None else ""))
    text.append("Robustness: " + "; ".join(per) + ".")
    if "deepmt_dr" in q.method.values and len(q.method.unique()) > 1:
        dm = q[q.method == "deepmt_dr"].set_index("kind")["change"]
        base = q[q.method != "deepmt_dr"].groupby("kind")["change"].mean()
        worse = [k for k in dm.index if k in base.index and dm[k] < base[k]]
        text.append(f"DeepMT-DR loses more QWK than the baselines' mean under {', '.join(worse) or 'no kind'} "
                    f"and less or equally under {', '.join(k for k in dm.index if k not in worse) or 'no kind'}.")
    if "psnr" in robust and robust.loc[robust.method == "deepmt_dr", "psnr"].notna().any():
        r = robust[robust.method == "deepmt_dr"].set_index("level")["psnr"]
        text.append(f"DeepMT-DR's SR PSNR: {r['clean']:.2f} dB clean, " + ", ".join(f"{v:.2f} dB at {k}" for k, v in r.drop('clean').items()) + ".")
else:
    text.append("Robustness: the test split has no graded images, so accuracy and QWK are undefined.")
if len(calibration):
    c = calibration.sort_values("ece")
    text.append("Calibration (ECE, 95% CI over images; lower is better): " + ", ".join(
        f"{r.label} {r.ece:.3f} [{r.ece_lo:.3f}, {r.ece_hi:.3f}] ({'over' if r.overconfidence > 0 else 'under'}-confident by "
        f"{abs(r.overconfidence):.3f}, Brier {r.brier:.3f})" for r in c.itertuples()) + ".")
cc = cost.set_index("method")
text.append("Cost per image at HR " + f"{cfg.data.hr_size}px: " + ", ".join(
    f"{label(m)} {cc.loc[m, 'params_total'] / 1e6:.3f} M parameters, {cc.loc[m, 'gflops_forward']:.3f} GFLOPs inference "
    f"({cc.loc[m, 'infer_img_s']:.0f} img/s here, {cc.loc[m, 'infer_img_s_grade_only']:.0f} without the visualization map), "
    f"trained at {cc.loc[m, 'train_img_s']:.0f} img/s" for m in cc.index) + ".")
text.append(f"Timings on {mach.get('cpu_model')} ({mach.get('usable_cores')} usable cores, {int(cost['threads'].iloc[0])} torch "
            f"threads, device {mach.get('device')}{', GPU ' + mach['gpu_name'] if mach.get('gpu_name') not in (None, 'None') else ''}, "
            f"autocast {mach.get('autocast')}), 1-min load average up to {cost['load_avg_1min'].max():.1f} while timing"
            + (" -- above the core count: the machine was shared, and the inference rates can be far too low "
               "(waiting OpenMP threads; rerun on a quiet machine or with timing_threads = 1)."
               if cost["load_avg_1min"].max() > float(mach.get("usable_cores", 1) or 1) else "."))
if smoke:
    text.append("(smoke profile: not results; untrained models on a handful of images.)")
print(" ".join(text))
