# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 01 Finding 1: super-resolution helps grading and lesion segmentation
#
# **Reproduces:** the paper's first finding (Introduction; claims **C1** and **C2** of the claims table):
# *super-resolving a low-resolution fundus photo improves both DR grading and lesion segmentation,
# compared with working on the LR image or its bicubic up-sampling.*
#
# We train the same tasks from four kinds of input and compare them on the same test images:
#
# | input | grading | segmentation |
# |---|---|---|
# | LR (24 px in `quick`) | `grader_lr` (ResNet-18-style grader) | `unet_lr` |
# | bicubic up-sampling of LR | `grader_bicubic`; `deepmt_dr_noisr` = DeepMT-DR without its ISR subnet | `unet_bicubic`; `deepmt_dr_noisr` |
# | super-resolved by DeepMT-DR | `deepmt_dr` | `deepmt_dr` |
# | HR (reference) | `grader_hr`; `foo_mt_hr` = the same lesion U-Net + grading head on HR | `unet_hr` |
#
# `foo_mt` / `foo_mt_hr` (a Foo et al.-style lesion-supervised multi-task net on bicubic / HR input) give the
# **controls** that decide whether this benchmark can test the claims at all, with thresholds fixed in advance
# (`deepmt.controls`): *learnable* (`foo_mt_hr` reaches 0.90 accuracy), *gap* (`foo_mt` on bicubic LR is at least
# 0.08 below it, so something is left to recover) and *lesion resolution* (U-Net on HR beats U-Net on bicubic in
# MA AUPR). A claim whose controls fail is "not testable", whatever its effect.
#
# **The LR-information dial.** How much microaneurysm information survives x4 downsampling is a setting of the
# benchmark (`data.synth.smudge_match`: MA-coloured smudges whose LR peak is that fraction of an MA's), not a fact
# of nature. The sweep trains the multi-task nets and DeepMT-DR at four settings, from "easy" (0: no smudges) to
# "nothing left" (1: MA and smudges alike at LR), and shows where super-resolution can help and where nothing can.
# At "nothing left" DeepMT-DR must recover nothing (the **negative control**).
#
# The controlled test of the claims is **DeepMT-DR vs DeepMT-DR without ISR**: identical segmentation and
# grading subnets, losses and schedule; only the input differs (SR vs bicubic). Effects are paired
# differences on the test images with 95% bootstrap intervals; grading runs are averaged over `seeds`.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seeds = [0, 1, 2]  # training seeds of the grading runs (smoke uses the first only)
seg_seeds = [0, 1, 2]  # training seeds of the segmentation-only U-Nets
dial = [0.0, 0.5, 0.8, 1.0]  # data.synth.smudge_match settings of the sweep (the profile's own uses `seeds`)
dial_seeds = [0]  # training seeds at the other dial settings
dataset = "synthetic"
data_root = ""
device = "auto"
n_boot = 1000

# %%
import pandas as pd

from deepmt.reporting import save_figure, save_table
from deepmt.studies import tables as T
from deepmt.studies.common import describe_config, sentence, study_config, study_seeds

cfg = study_config(profile, dataset, data_root, device)
seeds = study_seeds(cfg, seeds)
seg_seeds = study_seeds(cfg, seg_seeds)
dial_seeds = study_seeds(cfg, dial_seeds)
smoke = cfg.profile == "smoke"
print(describe_config(cfg), f"| grading seeds {seeds}, segmentation seeds {seg_seeds}")

# %% [markdown]
# ## Data
# The benchmark's splits (generated once and cached; see notebook 00). Every method is trained on the
# training split, selected on validation and measured on the test split.

# %%
from deepmt.data import build_datasets

splits = build_datasets(cfg.data)
print({name: len(ds) for name, ds in splits.items()})

# %% [markdown]
# ## Run
# Trains each method once per seed (or loads it from the experiment cache, shared with notebooks 04-06).

# %%
res = T.finding1(cfg, seeds, seg_seeds, n_boot=n_boot)
sweep = T.dial_sweep(cfg, dial, dial_seeds, default_seeds=seeds, n_boot=n_boot) if dataset == "synthetic" else None

# %% [markdown]
# ## Results

# %%
grading = res["grading"]
segmentation = res["segmentation"]
effects = res["effects"]
save_table(grading, "01_grading_by_input")
save_table(segmentation, "01_segmentation_by_input")
save_table(effects, "01_effects")
save_table(res["claims"], "01_claims")
controls = res["controls"] if sweep is None else pd.concat([res["controls"], sweep["controls"]], ignore_index=True)
save_table(controls, "01_controls")
display(controls[["id", "rule", "threshold", "value", "lo", "hi", "n_seeds", "status", "regime"]])
display(grading[["label", "input", "n_seeds"] + [f"{m} [95% CI]" for m in T.GRADING_METRICS]])
display(segmentation[["label", "input"] + [f"{m} [95% CI]" for m in ("aupr", "dice", "aupr_MA", "dice_MA")]])
display(effects[["task", "a", "b", "metric", "effect", "p_value"]])

# %% [markdown]
# ### The dial: the gap HR vs bicubic, and what DeepMT-DR recovers of it

# %%
if sweep is not None:
    dial_table = sweep["table"]
    save_table(dial_table, "01_dial_sweep")
    display(dial_table[["smudge_match", "n_seeds", "gap [95% CI]", "gain [95% CI]", "share_recovered", "ma_aupr_gain [95% CI]"]])

# %% [markdown]
# ## Figures

# %%
save_figure(T.plot_metric_bars(grading, ["accuracy", "qwk", "macro_f1"], "Grading from each input (test, 95% CI)"), "01_grading_by_input")
save_figure(T.plot_metric_bars(segmentation, ["aupr", "aupr_MA", "dice"], "Lesion segmentation from each input (test, 95% CI)"), "01_segmentation_by_input")
if sweep is not None:
    save_figure(T.plot_dial(sweep["table"]), "01_dial_sweep");

# %% [markdown]
# ## What we see

# %%
g = grading.set_index("method")
s = segmentation.set_index("method")
print(
    f"Grading accuracy from LR {g.loc['grader_lr', 'accuracy']:.3f}, bicubic {g.loc['grader_bicubic', 'accuracy']:.3f}, "
    f"DeepMT-DR without ISR {g.loc['deepmt_dr_noisr', 'accuracy']:.3f}, DeepMT-DR {g.loc['deepmt_dr', 'accuracy']:.3f}, "
    f"HR {g.loc['grader_hr', 'accuracy']:.3f}; a segmentation + grading multi-task net on HR {g.loc['foo_mt_hr', 'accuracy']:.3f} "
    f"(mean of {len(seeds)} seed(s)). "
    + sentence(effects, "foo_mt_hr", "deepmt_dr_noisr", "accuracy") + " (the information lost at LR, for the lesion-supervised family). "
    + sentence(effects, "deepmt_dr", "deepmt_dr_noisr", "accuracy") + "; "
    + sentence(effects, "deepmt_dr", "deepmt_dr_noisr", "qwk") + ". "
    f"Segmentation AUPR (mean over lesions): LR U-Net {s.loc['unet_lr', 'aupr']:.3f}, bicubic U-Net {s.loc['unet_bicubic', 'aupr']:.3f}, "
    f"DeepMT-DR {s.loc['deepmt_dr', 'aupr']:.3f}, HR U-Net {s.loc['unet_hr', 'aupr']:.3f}; microaneurysm AUPR "
    f"{s.loc['unet_bicubic', 'aupr_MA']:.3f} (bicubic) vs {s.loc['deepmt_dr', 'aupr_MA']:.3f} (DeepMT-DR) vs {s.loc['unet_hr', 'aupr_MA']:.3f} (HR). "
    + sentence(effects[effects.task == "segmentation"], "deepmt_dr", "deepmt_dr_noisr", "aupr") + ". "
    + "Controls: " + "; ".join(f"{r.id} {r.value:.3f} ({r.status})" for r in controls.itertuples()) + ". "
    + ("" if sweep is None else "Dial sweep (gap HR - bicubic / DeepMT-DR gain, accuracy): " + "; ".join(
        f"smudge_match {r.smudge_match:g}: {r.gap:+.3f} / {r.gain:+.3f}" for r in sweep["table"].itertuples()) + ". ")
    + "Effects (verdicts before controls; notebook 11 applies them): "
    + "; ".join(f"{r.id} {r.metric}: {r.verdict}" for r in res["claims"].itertuples()) + "."
    + (" (smoke profile: mechanics only, these numbers are not results.)" if smoke else "")
)
