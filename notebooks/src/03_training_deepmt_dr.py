# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 03 Training DeepMT-DR in stages, and the convergence of every trained part
#
# **Reproduces:** the paper's training procedure (Method, "training in stages"; authors' code): (1a) ISR +
# lesion segmentation on the segmentation set, (1b) grading + visualization fusion on HR images with the
# segmentation subnet frozen, (2) joint fine-tuning of every part with the task-aware loss at a small learning
# rate. The paper reports no curves; this notebook shows what the schedule does in our replication, and whether
# every model the claims rest on was trained until its validation curve levelled off.
#
# Everything is read back from cached runs (the same runs every other notebook uses): their per-epoch history
# (loss terms, validation metrics, seconds) and the epoch each stage kept. You will see:
#
# 1. DeepMT-DR's schedule as a table: what each stage trains (parts, trained vs frozen parameters), epochs,
#    peak learning rate, the validation metric that selects its epoch, seconds and training images/s;
# 2. the training loss of every term, one panel per stage;
# 3. the validation curves of **every trained part** -- DeepMT-DR's stages (1a: ISR PSNR and mean AUPR; 1b:
#    grading; 2: grading and PSNR, with the weights stage 2 starts from evaluated as "epoch 0", the candidate it
#    competes with), DeepMT-DR without ISR (the same stages on bicubic input) and every baseline the claims and
#    tables use (multi-task grader on HR and on bicubic; grader on LR, bicubic and HR; the two-stage ISR-then-grader;
#    U-Net on LR, bicubic and HR; single-task ISR, SRCNN, EDSR-style) -- each with the epoch it kept, and a
#    table `results/03_convergence.csv` that says per curve whether it **levelled off**: the running best of the
#    validation metric gained at most 10 % of its total gain over the last third of the epochs (rule and threshold
#    fixed in `deepmt/studies/convergence.py` before the curves were looked at; curves under 3 epochs are not judged);
#    and, for every part that segments, whether the epoch it kept **kept every lesion**: a mean AUPR that selects
#    the epoch can rise while the channel of one rare lesion dies, so `results/03_lesion_channels.csv` gives per
#    lesion the best validation AUPR of the stage and the value at the kept epoch, *collapsed* when the kept value
#    is below half the best (a check added after U-Net on HR's SE channel was seen to die at epoch 5);
# 4. the calibration of stage 2's task-aware feedback, per seed: gradient norm of each term on the ISR (before
#    weighting, over the first stage-2 batches) and the scale used (`method.feedback_summary()` of the trained model);
# 5. the epoch each stage kept, and the final test metrics.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seeds = [0, 1, 2]  # training seeds whose curves are shown (smoke uses the first only); the schedule is the first's
dataset = "synthetic"
data_root = ""
device = "auto"
baselines = ["deepmt_dr_noisr", "foo_mt_hr", "foo_mt", "grader_lr", "grader_bicubic", "grader_hr", "two_stage",
             "unet_lr", "unet_bicubic", "unet_hr", "isr", "srcnn", "edsr"]  # every other run the claims and tables use

# %%
import numpy as np

from deepmt.studies import training as T
from deepmt.studies.training import (build_datasets, describe_config, figure_convergence, figure_loss_curves, figure_schedule,
                                     lesion_channel_summary, load_method, run_methods, save_figure, save_table, study_config,
                                     study_seeds)

cfg = study_config(profile, dataset, data_root, device)
smoke = cfg.profile == "smoke"
seeds = study_seeds(cfg, seeds)
print(describe_config(cfg), f"| seeds {seeds}")
print(f"learning rate {cfg.train.lr:g} (stage 2 x {cfg.train.lr_stage2_factor:g}), batch {cfg.train.batch_size}, "
      f"epochs 1a/1b/2 = {cfg.train.epochs_stage1a}/{cfg.train.epochs_stage1b}/{cfg.train.epochs_stage2}, "
      f"single-stage baselines {cfg.train.epochs_single}"
      + "".join(f", {name} {n}" for name, n in cfg.train.epochs_by_method.items())
      + f"; task-aware feedback: {cfg.loss.feedback_scaling}")

# %% [markdown]
# ## Data

# %%
splits = build_datasets(cfg.data)
for name, ds in splits.items():
    grades = np.asarray(getattr(ds, "grades", None) if getattr(ds, "grades", None) is not None else [], dtype=int)
    print(f"{name}: {len(ds)} images" + (f", grades {np.bincount(grades[grades >= 0], minlength=5).tolist()}" if grades.size else ""))

# %% [markdown]
# ## Run: the cached DeepMT-DR runs and the baselines (trained once per seed, shared by every notebook)

# %%
runs = run_methods(["deepmt_dr", *baselines], cfg, seeds=seeds)
res = runs["deepmt_dr"][0]
methods = [load_method(r, device="cpu") for r in runs["deepmt_dr"]]  # parameter counts, lr, feedback calibration
study = T.training_study(runs, methods, smoke=smoke)

# %% [markdown]
# ## Results
#
# DeepMT-DR's schedule and kept epochs (first seed), the convergence of every curve, the task-aware feedback of
# stage 2, and the test metrics of every run.

# %%
save_table(study.schedule, "03_schedule")
save_table(study.history, "03_history")
save_table(study.selected, "03_selected_epochs")
save_table(study.curves, "03_curves")
save_table(study.convergence, "03_convergence")
save_table(study.lesion_channels, "03_lesion_channels")
save_table(study.feedback, "03_feedback")
save_table(study.final, "03_test_metrics")
for name, table in study.timing.items():  # seconds differ between reruns: kept apart from the results
    save_table(table, f"timing/03_{name}_seconds")
display(study.schedule.drop(columns=["what"]).round(4))
display(study.selected.round(4))
display(study.convergence.drop(columns=["rule"]).round(4))
display(lesion_channel_summary(study.lesion_channels))
display(study.feedback)
display(study.final.round(4))
display(study.timing["schedule"].round(1))

# %% [markdown]
# ## Figures

# %%
save_figure(figure_schedule(study.schedule, study.timing["schedule"]), "03_schedule")
save_figure(figure_loss_curves(res.history), "03_loss_curves")
save_figure(figure_convergence(study.curves, study.convergence), "03_convergence");

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.training.what_we_see`).

# %%
print(T.what_we_see(study))
