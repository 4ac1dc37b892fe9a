# %% [markdown]
# # 03 Training DeepMT-DR in stages
#
# **Reproduces:** the paper's training procedure (Method, "training in stages"; authors' code): (1a) ISR +
# lesion segmentation on the segmentation set, (1b) grading + visualization fusion on HR images with the
# segmentation subnet frozen, (2) joint fine-tuning of every part with the task-aware loss at a small learning
# rate. The paper reports no curves; this notebook shows what the schedule does in our replication.
#
# Everything is read back from the cached `deepmt_dr` run (the same run every other notebook uses): its
# per-epoch history (loss terms, validation metrics, seconds) and the epoch each stage kept. You will see:
#
# 1. the schedule as a table: what each stage trains (parts, trained vs frozen parameters), epochs, peak
#    learning rate, the validation metric that selects its epoch, seconds and training images/s;
# 2. the training loss of every term, one panel per stage;
# 3. validation metrics (QWK / accuracy, PSNR, Dice / AUPR) after every epoch, stage by stage, beside the
#    single-task baselines' curves (grader on bicubic, ISR alone, U-Net on bicubic);
# 4. the epoch each stage kept, and the final test metrics.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seed = 0
dataset = "synthetic"
data_root = ""
device = "auto"
compare_methods = ["grader_bicubic", "isr", "unet_bicubic"]  # single-task runs whose curves are shown beside

# %%
import numpy as np
import pandas as pd

from deepmt.data import build_datasets
from deepmt.experiments import load_method
from deepmt.reporting import save_figure, save_table
from deepmt.studies import training as T
from deepmt.studies.common import describe_config, label, run_methods, study_config
from deepmt.utils import seed_everything

cfg = study_config(profile, dataset, data_root, device)
seed_everything(seed)
smoke = cfg.profile == "smoke"
print(describe_config(cfg))
print(f"learning rate {cfg.train.lr:g} (stage 2 x {cfg.train.lr_stage2_factor:g}), batch {cfg.train.batch_size}, "
      f"epochs 1a/1b/2 = {cfg.train.epochs_stage1a}/{cfg.train.epochs_stage1b}/{cfg.train.epochs_stage2}, "
      f"single-task baselines {cfg.train.epochs_single}")

# %% [markdown]
# ## Data

# %%
splits = build_datasets(cfg.data)
for name, ds in splits.items():
    grades = np.asarray(getattr(ds, "grades", None) if getattr(ds, "grades", None) is not None else [], dtype=int)
    print(f"{name}: {len(ds)} images" + (f", grades {np.bincount(grades[grades >= 0], minlength=5).tolist()}" if grades.size else ""))

# %% [markdown]
# ## Run: the cached DeepMT-DR run (trained once, shared by every notebook) and the single-task baselines

# %%
runs = run_methods(["deepmt_dr", *compare_methods], cfg, seeds=[seed])
res = runs["deepmt_dr"][0]
method = load_method(res, device="cpu")  # for parameter counts and learning rates only
schedule = T.stage_schedule(res, method)
losses = T.loss_curves(res.history)
val = T.validation_curves(res.history)
selected = T.selected_epochs(res)
final = T.final_metrics(runs)

# %% [markdown]
# ## Results

# %%
save_table(schedule, "03_schedule")
save_table(res.history, "03_history")
save_table(selected, "03_selected_epochs")
save_table(final, "03_test_metrics")
display(schedule.drop(columns=["what"]).round(4))
display(selected.round(4))
display(final.round(4))

# %% [markdown]
# ## Figures

# %%
save_figure(T.figure_schedule(schedule), "03_schedule")
save_figure(T.figure_loss_curves(res.history), "03_loss_curves")
save_figure(T.figure_validation_curves(runs, "deepmt_dr"), "03_validation_curves");

# %% [markdown]
# ## What we see

# %%
sel = selected.set_index("stage")
sch = schedule.set_index("stage")
fin = final.set_index("method")


def at(stage, col):
    return float(sel.loc[stage, col]) if stage in sel.index and col in sel.columns else float("nan")


def total_change(stage):
    d = losses[(losses.stage == stage) & (losses.term == "total")].sort_values("epoch")
    return (d.value.iloc[-1] / d.value.iloc[0] - 1) if len(d) > 1 else float("nan")


parts = []
for st in sch.index:
    r = sch.loc[st]
    parts.append(f"{st} trains {r['parts']} ({r['trained_share']:.0%} of {int(r['trained_params'] + r['frozen_params']):,} "
                 f"parameters) for {r['epochs_run']} epoch(s) at peak lr {r['peak_lr']:.2g} in {r['seconds']:.1f} s "
                 f"({r['images_per_s']:.0f} training images/s) and keeps epoch {r['selected_epoch']} by validation "
                 f"{r['selection_metric']}")
text = "Schedule: " + "; ".join(parts) + ". "
changes = {st: total_change(st) for st in sch.index}
if any(np.isfinite(v) for v in changes.values()):
    text += "The total training loss changes by " + ", ".join(
        f"{v:+.0%} over {st}" for st, v in changes.items() if np.isfinite(v)) + " (first to last epoch). "
if "stage1b" in sel.index and "stage2" in sel.index and "val_qwk" in sel:
    text += (f"Validation QWK of the kept epoch: {at('stage1b', 'val_qwk'):.3f} after stage 1b (grader trained on HR, "
             f"evaluated on the full LR -> SR pipeline) and {at('stage2', 'val_qwk'):.3f} after joint fine-tuning "
             f"({at('stage2', 'val_qwk') - at('stage1b', 'val_qwk'):+.3f}). ")
if "val_psnr" in sel and np.isfinite(at("stage1a", "val_psnr")):
    text += (f"Validation PSNR is {at('stage1a', 'val_psnr'):.2f} dB after stage 1a and {at('stage2', 'val_psnr'):.2f} dB "
             f"after stage 2 ({at('stage2', 'val_psnr') - at('stage1a', 'val_psnr'):+.2f} dB: the task-aware loss trades "
             f"pixel fidelity for the later tasks where this is negative). ")
if "val_dice" in sel and np.isfinite(at("stage1a", "val_dice")):
    text += f"Validation Dice: {at('stage1a', 'val_dice'):.3f} after 1a, {at('stage2', 'val_dice'):.3f} after 2. "
else:
    text += "No lesion masks in the validation split: stage 1a cannot select on Dice (its last epoch is kept). "
text += (f"On the test split DeepMT-DR reaches accuracy {fin.loc['deepmt_dr', 'accuracy']:.3f}, QWK "
         f"{fin.loc['deepmt_dr', 'qwk']:.3f}, PSNR {fin.loc['deepmt_dr', 'psnr']:.2f} dB and Dice {fin.loc['deepmt_dr', 'dice']:.3f} "
         f"after {fin.loc['deepmt_dr', 'train_s']:.0f} s of optimisation")
others = [m for m in compare_methods if m in fin.index]
if others:
    text += "; the single-task runs: " + ", ".join(
        f"{label(m)} " + ", ".join(f"{k} {fin.loc[m, k]:.3f}" for k in ("qwk", "psnr", "dice") if np.isfinite(fin.loc[m, k]))
        + f" in {fin.loc[m, 'train_s']:.0f} s" for m in others)
text += "."
if smoke:
    text += " (smoke profile: not results; one epoch per stage on a handful of images.)"
print(text)
