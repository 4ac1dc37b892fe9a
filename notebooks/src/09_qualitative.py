# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 09 Qualitative results in the paper's style
#
# **Reproduces:** the paper's qualitative figures: super-resolved close-ups around lesions for bicubic
# up-sampling, a single-task ISR network (`isr`: the same ISR subnet trained with the pixel loss only) and
# DeepMT-DR, beside the LR input and the HR truth; DeepMT-DR's predicted lesion maps against the ground truth;
# and its visualization map (the grading evidence).
#
# You will see:
# 1. crops around microaneurysms (MA) of test images of grades 1-4, with each SR method's PSNR **in the crop**;
# 2. the same images whole: crop box, ground-truth lesions, DeepMT-DR's SR image with its predicted lesions,
#    its lesion probabilities and visualization map;
# 3. scikit-image's real fundus photograph (`skimage.data.retina()`) through `deepmt.engine.predict` with the
#    trained DeepMT-DR: LR input, SR, lesion maps, visualization map and grade probabilities. It is a **normal**
#    eye and the model was trained on synthetic data: this checks the mechanics and shows the domain gap; it
#    says nothing about accuracy.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seed = 0
dataset = "synthetic"
data_root = ""
device = "auto"
n_crops = 4  # test images shown (one per grade 1-4 where possible)
lesion = "MA"  # crops are centred on this lesion type: MA, HE, EX, SE or any

# %%
from deepmt.studies import qualitative as Q
from deepmt.studies.qualitative import describe_config, run_methods, save_figure, save_table, study_config

cfg = study_config(profile, dataset, data_root, device)
print(describe_config(cfg))

# %% [markdown]
# ## Run
#
# The three SR methods come from the experiment cache (shared with notebooks 01-08). The crops are taken from the
# cached test split: images that contain the chosen lesion type, one per grade 1-4 first; the crop box (side about
# a sixth of the image) is centred on the lesion whose box holds the most lesion pixels. Without lesion masks,
# random points of the field of view are used (and said below).

# %%
runs = run_methods(["bicubic", "isr", "deepmt_dr"], cfg, seeds=[seed])
qual = Q.qualitative_study({m: rs[0] for m, rs in runs.items()}, cfg, n_crops=n_crops, lesion=lesion)
real = Q.real_photo_study(runs["deepmt_dr"][0], device=device)

# %% [markdown]
# ## Results
#
# PSNR (dB) of each SR method inside each crop (and on the whole image), and the real photo's grade probabilities
# from `predict_images` (`probability`) and from the fp32 forward that made the maps (`probability_fp32`).

# %%
save_table(qual.table, "09_crop_psnr")
save_table(real.table, "09_real_photo_grades")
display(Q.psnr_wide(qual.table).round(2))
display(real.table.round(3))

# %% [markdown]
# ## Figures

# %%
save_figure(Q.figure_sr_crops(qual), "09_sr_crops")
save_figure(Q.figure_full_images(qual), "09_lesion_and_vis_maps")
save_figure(Q.figure_real_photo(real), "09_real_photo");

# %% [markdown]
# ## What we see
#
# Written from the numbers above (`deepmt.studies.qualitative.what_we_see`).

# %%
print(Q.what_we_see(qual, real))
