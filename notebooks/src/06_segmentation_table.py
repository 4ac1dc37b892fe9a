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

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seeds = [0, 1, 2]  # training seeds of every method (shared with notebooks 01/04/05)
dataset = "synthetic"
data_root = ""
device = "auto"
n_boot = 1000

# %%
from deepmt import LESIONS
from deepmt.reporting import save_figure, save_table
from deepmt.studies import tables as T
from deepmt.studies.common import describe_config, sentence, study_config, study_seeds

cfg = study_config(profile, dataset, data_root, device)
seeds = study_seeds(cfg, seeds)
smoke = cfg.profile == "smoke"
print(describe_config(cfg), f"| seeds {seeds}")

# %% [markdown]
# ## Data

# %%
from deepmt.data import build_datasets

splits = build_datasets(cfg.data)
present = splits["test"].meta[[f"n_{l}" for l in LESIONS]].gt(0).sum() if hasattr(splits["test"], "meta") else None
print({name: len(ds) for name, ds in splits.items()}, "| test images per lesion:", None if present is None else present.to_dict())

# %% [markdown]
# ## Run

# %%
res = T.segmentation_table(cfg, seeds, n_boot=n_boot)

# %% [markdown]
# ## Results

# %%
table, effects = res["table"], res["effects"]
save_table(table, "06_segmentation_table")
save_table(effects, "06_effects")
for metric in ("aupr", "auc", "dice"):
    print(metric)
    display(table[table.metric == metric][["label"] + [f"{l} [95% CI]" for l in (*LESIONS, "mean")]])
display(effects[["b", "metric", "effect", "p_value"]])

# %% [markdown]
# ## Figures

# %%
save_figure(T.plot_seg_heatmap(table, "aupr"), "06_segmentation_aupr")
save_figure(T.plot_seg_heatmap(table, "dice"), "06_segmentation_dice");

# %% [markdown]
# ## What we see

# %%
a = table[table.metric == "aupr"].set_index("method")
print(
    f"Microaneurysm AUPR: U-Net on LR {a.loc['unet_lr', 'MA']:.3f}, on bicubic {a.loc['unet_bicubic', 'MA']:.3f}, "
    f"DeepMT-DR without ISR {a.loc['deepmt_dr_noisr', 'MA']:.3f}, DeepMT-DR {a.loc['deepmt_dr', 'MA']:.3f}, on HR {a.loc['unet_hr', 'MA']:.3f}. "
    f"Haemorrhage AUPR {a.loc['unet_bicubic', 'HE']:.3f} (bicubic U-Net) vs {a.loc['deepmt_dr', 'HE']:.3f} (DeepMT-DR). "
    + sentence(effects, "deepmt_dr", "unet_bicubic", "aupr_MA") + "; " + sentence(effects, "deepmt_dr", "deepmt_dr_noisr", "aupr_MA") + "."
    + (" (smoke profile: mechanics only, these numbers are not results.)" if smoke else "")
)
