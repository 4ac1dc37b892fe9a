# %% [markdown]
# # 02 Finding 2: the lesion regions agree with the grading evidence
#
# **Reproduces:** the paper's **Finding 2** (claim **C3** in `deepmt/claims.py`): the regions that drive a
# DR grader's decision -- its Grad-CAM / visualization map -- lie on the lesions that segmentation finds.
# The paper shows this with pictures; here it is *measured* on the test split.
#
# Maps (all from the package's own code, `deepmt.models.visualization`, via `deepmt.studies.attention.visualization_maps`):
# * **Grader on HR** (`grader_hr`, trained on grades only, never on masks): plain multi-stage Grad-CAM of
#   the predicted grade -- the unbiased test of the finding;
# * **DeepMT-DR** (`deepmt_dr`): its own visualization map from the **LR** input (Grad-CAM of ResNet stages with
#   lesion-oriented feature selection, fused coarse-to-fine). It is trained to agree with its lesion maps, so
#   its agreement is partly by construction.
#
# Measures, per test image with lesion masks (definitions in `deepmt/studies/attention.py`):
# 1. **energy share**: the share of the map's energy (inside the field of view, FOV) that falls inside the
#    lesion masks dilated by a few px, against a **random-placement baseline**: the same masks rotated by a
#    random angle about the FOV centre (and mirrored at random), which keeps lesion count, size, area and distance
#    from the centre and moves only *where* they are. C3's effect = mean(observed) − mean(random), paired
#    bootstrap over images;
# 2. the map as a **pixel-level lesion detector**: ROC-AUC inside the FOV (0.5 = chance), overall, per grade
#    and per lesion type.
#
# You will see the claims row, tables per method / grade / lesion type, example maps with lesion contours
# (grades 1-4), and observed-vs-random plots.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick
seed = 0
dataset = "synthetic"
data_root = ""
device = "auto"
n_images = 200  # test images with lesion masks to evaluate (the smoke split has fewer)
n_random = 20  # random placements of each image's masks
dilation_px = 0  # lesion masks dilated by this many HR px; 0 -> hr_size // 32
target = "pred"  # Grad-CAM target grade: "pred" (the decision being explained) or "true"

# %%
import numpy as np
import pandas as pd

from deepmt import metrics as M
from deepmt.claims import claims_table
from deepmt.reporting import save_figure, save_table
from deepmt.studies import attention as A
from deepmt.studies.common import describe_config, label, run_methods, study_config

cfg = study_config(profile, dataset, data_root, device)
smoke = cfg.profile == "smoke"
METHODS = ["grader_hr", "deepmt_dr"]
print(describe_config(cfg))

# %% [markdown]
# ## Data
#
# The test split; only images with an annotated lesion inside the field of view can be measured.

# %%
test = A.test_split(cfg)
print(f"{dataset} test split: {len(test)} images; the first {n_images} with lesion masks are evaluated")

# %% [markdown]
# ## Run
#
# Both methods come from the experiment cache (trained once, shared with the other notebooks); the maps are
# computed here on the test images.

# %%
runs = run_methods(METHODS, cfg, seeds=[seed])
study = A.attention_study({m: runs[m][0] for m in METHODS}, cfg, n_images=n_images, dilation=dilation_px,
                          n_random=n_random, target=target, seed=seed, dataset=test)
print(f"{study.n_images} images measured ({study.n_scanned} scanned, {study.n_without_lesions} without lesions); "
      f"lesion masks dilated by {study.dilation} px; {study.n_random} random placements per image")
for note in study.notes:
    print("NOTE:", note)

# %% [markdown]
# ## Results

# %%
summary = A.summary_table(study.per_image, seed=seed)
by_grade = A.by_grade_table(study.per_image)
by_lesion = A.by_lesion_table(study.per_image)
claims = claims_table(A.claims_rows(summary, n_seeds=1, methods=METHODS))
save_table(study.per_image, "02_per_image")
save_table(summary, "02_energy_summary")
save_table(by_grade, "02_by_grade")
save_table(by_lesion, "02_by_lesion")
save_table(claims, "02_claims")
display(claims[["id", "comparison", "metric", "effect", "lo", "hi", "n_seeds", "verdict"]])
display(summary.round(4))
display(by_grade.round(3))
display(by_lesion.round(3))

# %% [markdown]
# ## Figures

# %%
save_figure(A.figure_examples(study), "02_maps_vs_lesions")
save_figure(A.figure_energy(study.per_image, summary), "02_energy_observed_vs_random");

# %% [markdown]
# ## What we see

# %%
def relation(lo, hi):
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "cannot be compared with"
    return "above" if lo > 0 else "below" if hi < 0 else "not distinguishable from"


parts = []
if not len(summary):
    parts.append("Nothing was measured: " + " ".join(study.notes))
for _, r in summary.iterrows():
    m = r["method"]
    parts.append(
        f"{label(m)} ({r['n_images']} images): {r['energy']:.1%} of the map's energy lies inside the lesion regions "
        f"(which cover {r['area_share']:.1%} of the field of view) against {r['energy_random']:.1%} for the same regions "
        f"placed at random, a difference of {M.format_ci(r['effect'], r['effect_lo'], r['effect_hi'], signed=True)} "
        f"(x{r['lift']:.2f}; {relation(r['effect_lo'], r['effect_hi'])} the random baseline, p = {r['p_value']:.3f}). "
        f"As a pixel-level lesion detector its map reaches ROC-AUC {M.format_ci(r['auc'], r['auc_lo'], r['auc_hi'])} "
        f"(random placements: {r['auc_random']:.3f}; chance 0.5)."
    )
    g = by_grade[(by_grade.method == m) & (by_grade.grade >= 0)]
    if len(g) > 1:
        best, worst = g.loc[g["effect"].idxmax()], g.loc[g["effect"].idxmin()]
        parts.append(f"By grade, the excess energy is largest in grade {int(best['grade'])} ({best['effect']:+.1%}) and smallest "
                     f"in grade {int(worst['grade'])} ({worst['effect']:+.1%}).")
    les = by_lesion[(by_lesion.method == m) & (by_lesion.n_images > 0)]
    if len(les):
        top = les.loc[les["auc"].idxmax()]
        parts.append(f"Its map detects {top['lesion']} best (AUC {top['auc']:.3f} over {top['n_images']} images).")
    if np.isfinite(r["effect_pred"]):
        parts.append(
            f"Against its own predicted lesion regions ({r['n_pred']} images with any), the excess is "
            f"{M.format_ci(r['effect_pred'], r['effect_pred_lo'], r['effect_pred_hi'], signed=True)} -- partly by construction, "
            f"since its training pulls the map towards its lesion maps."
        )
for _, c in claims.iterrows():
    parts.append(f"Claim C3 with {c['comparison'].split(':')[0]}: {c['verdict']}.")
if smoke:
    parts.append("(smoke profile: a few images and barely trained models -- these numbers check the mechanics; they are not results.)")
print(" ".join(parts))
