# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 06 The segmentation table: per-lesion AUPR, ROC-AUC and Dice
#
# **Reproduces:** the paper's lesion segmentation comparison (Experiments; supports **C2** of notebook 01):
# per-lesion **AUPR** and **ROC-AUC** (the paper's metrics, averaged over the test images that contain the
# lesion) and **Dice** at threshold 0.5, for microaneurysms (MA), haemorrhages (HE), hard exudates (EX) and
# soft exudates (SE):
#
# * U-Nets (the same lesion U-Net as in DeepMT-DR) trained on LR, bicubic and HR images;
# * DeepMT-DR without ISR (segmentation of the bicubic image, trained jointly with grading);
# * DeepMT-DR (segmentation of its super-resolved image).
#
# Microaneurysms are the lesions that nearly vanish at LR, so the MA column is where super-resolution
# should matter most.
#
# **A loss check.** The segmentation loss is the paper's Dice + focal, with Dice computed per image and lesion.
# Read literally, an image without a lesion still enters that lesion's Dice, and there soft Dice asks for an all-zero
# map; for a rare lesion such images are most of the data. Notebook 03's lesion-channel check found the SE channel
# dead on every seed of U-Net on HR, U-Net on LR and the seg+grade multi-task net on HR. So these three are trained
# again with Dice averaged only over the (image, lesion) pairs whose mask has a lesion pixel
# (`loss.seg_dice_empty = "skip"`; focal still sees every image), and each pair is compared on the same test images
# (for the multi-task net, test accuracy too). Every other table here keeps the literal setting (`"include"`).

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seeds = [0, 1, 2]  # training seeds of every method (shared with notebooks 01/04/05)
dataset = "synthetic"
data_root = ""
device = "auto"
n_boot = 1000

# %%
from deepmt.studies import segmentation_table as T
from deepmt.studies.segmentation_table import LESIONS, describe_config, save_figure, save_table, study_config, study_seeds

cfg = study_config(profile, dataset, data_root, device)
seeds = study_seeds(cfg, seeds)
print(describe_config(cfg), f"| seeds {seeds}")

# %% [markdown]
# ## Run
# The benchmark's splits are generated once and cached (notebook 00, which also counts the lesions per grade);
# every method is trained once per seed (or loaded from the experiment cache, shared with notebooks 01, 04, 05).

# %%
res = T.segmentation_table(cfg, seeds, n_boot=n_boot)
dice = T.dice_empty_check(cfg, seeds, n_boot=n_boot)  # T.DICE_EMPTY_METHODS again, with the other loss.seg_dice_empty

# %% [markdown]
# ## Results

# %%
save_table(res["table"], "06_segmentation_table")
save_table(res["effects"], "06_effects")
for metric in ("aupr", "auc", "dice"):
    print(metric)
    display(res["table"][res["table"].metric == metric][["label"] + [f"{l} [95% CI]" for l in (*LESIONS, "mean")]])
display(res["effects"][["b", "metric", "effect", "p_value"]])
# the loss check: Dice on every annotated mask (include) vs only where the lesion is (skip)
save_table(dice["table"], "06_dice_empty")
save_table(dice["channels"], "06_dice_empty_channels")
save_table(dice["effects"], "06_dice_empty_effects")
display(dice["table"][["label", "seg_dice_empty", "kept_all"] + [f"{l} [95% CI]" for l in (*LESIONS, "mean", "accuracy")]])
display(dice["effects"][["a", "b", "metric", "effect", "p_value"]])

# %% [markdown]
# ## Figures

# %%
save_figure(T.plot_seg_heatmap(res["table"], "aupr"), "06_segmentation_aupr")
save_figure(T.plot_seg_heatmap(res["table"], "dice"), "06_segmentation_dice");

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.segmentation_table.what_we_see_06`).

# %%
print(T.what_we_see_06(res))
print(T.what_we_see_dice_empty(dice))
