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
# The **controls** decide whether this benchmark can test the claims at all, with thresholds fixed in advance
# (`deepmt.controls`); each is measured on one object, and a claim is gated only by controls on the objects it
# judges. On the benchmark, with `foo_mt` / `foo_mt_hr` (a Foo et al.-style lesion-supervised multi-task net on
# bicubic / HR input): *learnable* (`foo_mt_hr` reaches 0.90 accuracy) and *gap* (`foo_mt` on bicubic LR is at
# least 0.08 below it, so something is left to recover). On the grader C1 judges, *gap:deepmt_dr*: DeepMT-DR's
# grading pathway, its trained segmentation and grading subnets fed [HR, Seg(HR)] instead of its SR image, at least
# 0.08 above the same weights fed [bicubic, Seg(bicubic)] (no training: each seed's cached run is evaluated again,
# `deepmt/studies/pathway.py`); if HR buys DeepMT-DR's own grader less, no super-resolution can. And *lesion
# resolution* (U-Net on HR beats U-Net on bicubic in MA AUPR). A claim whose controls fail is "not testable",
# whatever its effect.
#
# **The LR-information dial.** How much microaneurysm information survives x4 downsampling is a setting of the
# benchmark (`data.synth.smudge_match`: MA-coloured smudges whose LR peak is that fraction of an MA's), not a fact
# of nature. The sweep trains the multi-task nets and DeepMT-DR at four settings, from "easy" (0: no smudges) to
# "nothing left" (1: MA and smudges alike at LR), and shows where super-resolution can help and where nothing can.
# At "nothing left" DeepMT-DR must recover nothing over the same network on bicubic input (the **negative
# controls**, each on its claim's comparison): for C1, its grading accuracy gain (*negative:grading*); for C2, how
# much better its MA map tells microaneurysms from smudges at the generator's lesion centres (*negative:identity*,
# the MA-vs-smudge AUC gain, below). Each must have a 95% interval that reaches 0. They decide whether C1 and C2 can
# be judged, so they are trained with as many seeds as the claims are (`negative_control_seeds`); the other dial
# settings are descriptive and use `dial_seeds`. The intervals cover the test images, not training noise: with one
# seed, two trainings of the same network can differ "significantly" by a few hundredths of accuracy.
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
negative_control_seeds = [0, 1, 2]  # training seeds at dial 1.0, "nothing left": the negative controls gate C1 and C2
few_labels_fraction = 0.1  # share of training images with grade and masks in the few-labels section
few_labels_seeds = [0, 1, 2]  # training seeds of the few-labels section (all labels: the runs above)
dataset = "synthetic"
data_root = ""
device = "auto"
n_boot = 1000

# %%
import pandas as pd

from deepmt.studies import finding1 as F1
from deepmt.studies.finding1 import describe_config, save_figure, save_table, study_config, study_seeds

cfg = study_config(profile, dataset, data_root, device)
seeds = study_seeds(cfg, seeds)
seg_seeds = study_seeds(cfg, seg_seeds)
dial_seeds = study_seeds(cfg, dial_seeds)
negative_control_seeds = study_seeds(cfg, negative_control_seeds)
few_labels_seeds = study_seeds(cfg, few_labels_seeds)
print(describe_config(cfg), f"| grading seeds {seeds}, segmentation seeds {seg_seeds}")

# %% [markdown]
# ## Run
# The benchmark's splits are generated once and cached (notebook 00). Each method is trained on the training
# split once per seed (or loaded from the experiment cache, shared with notebooks 04-06), selected on validation
# and measured on the test split; on the synthetic benchmark the dial sweep trains at each of its settings.
# DeepMT-DR's grading pathway on the HR and the bicubic image is its cached runs evaluated again (no training).

# %%
res = F1.finding1(cfg, seeds, seg_seeds, n_boot=n_boot, dial=dial, dial_seeds=dial_seeds, control_seeds=negative_control_seeds)

# %% [markdown]
# ## Results

# %%
save_table(res["grading"], "01_grading_by_input")
save_table(res["segmentation"], "01_segmentation_by_input")
save_table(res["effects"], "01_effects")
save_table(res["claims"], "01_claims")
save_table(res["controls"], "01_controls")
display(res["controls"][["id", "object", "rule", "threshold", "value", "lo", "hi", "n_seeds", "status", "regime"]])
display(res["grading"][["label", "input", "n_seeds"] + [f"{m} [95% CI]" for m in F1.GRADING_METRICS]])
display(res["segmentation"][["label", "input"] + [f"{m} [95% CI]" for m in ("aupr", "dice", "aupr_MA", "dice_MA")]])
display(res["effects"][["task", "a", "b", "metric", "effect", "p_value"]])

# %% [markdown]
# ### The dial: the gap HR vs bicubic, and what DeepMT-DR recovers of it
# (synthetic benchmark only: the dial is a setting of its generator)

# %%
if res["dial"] is not None:
    save_table(res["dial"], "01_dial_sweep")
    display(res["dial"][["smudge_match", "n_seeds", "gap [95% CI]", "gain [95% CI]", "share_recovered", "ma_aupr_gain [95% CI]"]])

# %% [markdown]
# ### Does the MA map tell microaneurysms from smudges?
# MA AUPR is a pixel metric: a map that only outlines MA-sized dots more sharply gains it too, even where LR cannot
# say which dot is an MA. Here each method's MA probability is read at the generator's MA and smudge centres, and
# the AUC of MA vs smudge says whether the map tells them apart (0.5: it does not; the HR net shows what there is
# to find; `deepmt/studies/lesion_identity.py`). At "nothing left", DeepMT-DR's AUC minus its no-ISR twin's, paired
# over the same test images, is the control *negative:identity* (in the controls table above); it replaced the
# negative control on pixel MA AUPR (whose gain stays in the dial table, `ma_aupr_gain`).

# %%
if res["dial_runs"] is not None:
    identity = F1.identity_table(res["dial_runs"], cfg, n_boot=n_boot)
    save_table(identity, "01_ma_vs_smudge")
    display(identity[["smudge_match", "label", "n_seeds", "auc [95% CI]", "n_ma", "n_smudge"]])
    print(F1.what_we_see_lesion_identity(identity))

# %% [markdown]
# ## Figures

# %%
save_figure(F1.plot_metric_bars(res["grading"], ["accuracy", "qwk", "macro_f1"], "Grading from each input (test, 95% CI)"), "01_grading_by_input")
save_figure(F1.plot_metric_bars(res["segmentation"], ["aupr", "aupr_MA", "dice"], "Lesion segmentation from each input (test, 95% CI)"), "01_segmentation_by_input")
if res["dial"] is not None:
    save_figure(F1.plot_dial(res["dial"]), "01_dial_sweep");

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.finding1.what_we_see_01`).

# %%
print(F1.what_we_see_01(res))

# %% [markdown]
# ## Few labels, many unlabelled HR images
#
# Everything above gives every method the same labelled images. DeepMT-DR's ISR, though, needs no label at all: in
# stage 1a it learns from HR images alone (the LR input is made from the HR image). Real screening archives hold
# far more ungraded photos than graded ones, so the regime where a learned ISR could have a real edge over a
# bicubic-input network is **few grade / mask labels but many unlabelled HR images**: the ISR learns from all of
# them, the bicubic-input networks (`foo_mt`, `deepmt_dr_noisr`) only from the labelled ones.
#
# `data.label_fraction` keeps grade and masks on a grade-stratified share of the training images (`few_labels_fraction`)
# and makes the rest unlabelled HR images; validation and test are untouched. Stages that need no labels (DeepMT-DR's
# stage 1a, the SR baselines) train on all training images, every other stage on the labelled ones. We measure the same
# numbers as the dial sweep (the gap HR vs bicubic, DeepMT-DR's gain over the same network without ISR, the share of
# the gap recovered) with few labels and with all labels (the runs above), and how much the gain changes between the
# two (a paired bootstrap over the test images, which both settings share).

# %%
few = F1.few_labels_study(cfg, few_labels_seeds, few_labels_fraction, n_boot=n_boot)
save_table(few["table"], "01_few_labels")
save_table(few["change"], "01_few_labels_change")
display(few["table"][["label_fraction", "regime", "n_seeds", "gap [95% CI]", "gain [95% CI]", "share_recovered", "ma_aupr_gain [95% CI]"]])
display(few["change"][["quantity", "metric", "few_labels", "all_labels", "change [95% CI]", "p_value"]])
save_figure(F1.plot_few_labels(few["table"]), "01_few_labels");

# %% [markdown]
# **Few labels as a claim regime.** This is the setting in which a learned ISR has a real advantage over any
# bicubic-input network, so claims **C1** (DeepMT-DR vs the same network without ISR) and **C4** (DeepMT-DR vs the
# lesion-supervised multi-task net on bicubic input, the one baseline trained here) are judged in it too, each with
# its own controls measured in this regime: *learnable* and *gap* on that multi-task net, *gap* on DeepMT-DR's grading
# pathway. They join the claims and controls tables of this notebook (`01_claims`, `01_controls`), one row per regime.

# %%
save_table(pd.concat([res["claims"], few["claims"]], ignore_index=True), "01_claims")
save_table(pd.concat([res["controls"], few["controls"]], ignore_index=True), "01_controls")
display(few["claims"][["id", "metric", "comparison", "regime", "effect", "lo", "hi", "n_seeds"]])
display(few["controls"][["id", "object", "rule", "threshold", "value", "lo", "hi", "n_seeds", "status", "regime"]])

# %% [markdown]
# ### What we see (few labels)
#
# Written from the numbers above (`deepmt.studies.few_labels.what_we_see_few_labels`).

# %%
print(F1.what_we_see_few_labels(few))
