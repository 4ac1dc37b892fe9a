# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 05 The super-resolution table: PSNR and SSIM, globally and inside lesion regions
#
# **Reproduces:** the paper's ISR comparison (Experiments; claim **C6**): *DeepMT-DR's super-resolution,
# trained with the task-aware loss, reconstructs lesion regions better than single-task ISR.* The paper's
# argument is that a pixel loss spends its capacity everywhere, while feedback from segmentation and grading
# makes the ISR subnet care most where lesions are. So we measure PSNR and SSIM (scikit-image conventions:
# Gaussian window, sigma 1.5; images in [0, 1]) over the whole image **and** inside lesion regions (the lesion
# masks dilated by 3 px), for:
#
# * `bicubic`: bicubic up-sampling of the LR image (no learning);
# * `srcnn`: SRCNN (Dong et al. 2014) on the bicubic image;
# * `edsr`: an EDSR-style residual network;
# * `isr`: the single-task ISR subnet, i.e. DeepMT-DR's ISR architecture trained with the pixel loss only;
# * `deepmt_dr`: the ISR subnet inside DeepMT-DR after joint training.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seeds = [0, 1, 2]  # training seeds of every method (metrics averaged over them; shared with notebooks 01/04)
dataset = "synthetic"
data_root = ""
device = "auto"
n_boot = 1000

# %%
from deepmt.studies import isr_table as T
from deepmt.studies.isr_table import ISR_METRICS, describe_config, save_figure, save_table, study_config, study_seeds

cfg = study_config(profile, dataset, data_root, device)
seeds = study_seeds(cfg, seeds)
print(describe_config(cfg), f"| DeepMT-DR seeds {seeds}")

# %% [markdown]
# ## Run
# The benchmark's splits are generated once and cached (notebook 00); every method is trained on the training
# split once per seed (or loaded from the experiment cache, shared with notebooks 01, 04 and 06).

# %%
res = T.isr_table(cfg, seeds, n_boot=n_boot)

# %% [markdown]
# ## Results

# %%
save_table(res["table"], "05_isr_table")
save_table(res["effects"], "05_effects")
save_table(res["claims"], "05_claims")
save_table(res["controls"], "05_controls")
display(res["controls"][["id", "rule", "threshold", "value", "lo", "hi", "n_seeds", "status"]])
display(res["table"][["label", "n_seeds"] + [f"{m} [95% CI]" for m in ISR_METRICS]])
display(res["effects"][["b", "metric", "effect", "p_value"]])

# %% [markdown]
# ## Figures

# %%
save_figure(T.plot_metric_bars(res["table"], list(ISR_METRICS), "Super-resolution quality (test, 95% CI)"), "05_isr_table");

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.isr_table.what_we_see_05`).

# %%
print(T.what_we_see_05(res))
