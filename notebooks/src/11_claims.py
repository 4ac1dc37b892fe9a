# ---
# jupyter:
#   kernelspec:
#     display_name: deepmt (.venv)
#     language: python
#     name: deepmt
# ---

# %% [markdown]
# # 11 Controls, then claims: what this benchmark can test, and what reproduces
#
# **Summarises** every claim of the paper that the notebooks test (`deepmt.claims.PAPER_CLAIMS`), but only after
# the **controls** that say whether the benchmark can test it at all (`deepmt.controls.CONTROLS`). A replication
# whose controls fail cannot say "not reproduced"; it can only say "not tested".
#
# **Controls** (thresholds pre-registered in `deepmt/controls.py` before any measurement; minimums, never
# loosened after seeing results), each measured on one **object**, the model or pathway whose numbers it checks:
# the lesion-supervised multi-task grader learns the grades on HR (`learnable`) and bicubic LR falls behind it
# (`gap`), the benchmark-level pair; the plain HR grader whose map C3 reads learns them too (`learnable:grader_hr`);
# DeepMT-DR's own grading pathway gains from HR over bicubic (`gap:deepmt_dr`, the grader C1 and C5 judge); every
# learned SR baseline beats bicubic, single-task ISR by 2 dB (`sr_works:*`); resolution matters for MA segmentation
# (`lesion_resolution`); and where LR carries no MA information DeepMT-DR recovers none over its no-ISR twin, in
# grading (`negative:grading`, for C1) and in telling MAs from smudges (`negative:identity`, for C2). A claim is
# gated only by the controls on the objects it names; a row measured on another object gates nothing. Each row:
# object, requirement, measured value with its 95% CI, regime (the benchmark setting that produced it), pass / fail.
#
# **Claims**: the comparison that tests each, our effect with its 95% CI, the seeds and regime behind it, the
# minimum effect that would matter, the p-value where the notebook wrote one, and a verdict computed from those
# numbers by one rule stated in code before the results (`deepmt.claims`, `deepmt.claims.apply_controls`):
#
# * **secondary (no verdict)**: each claim declares one **primary metric** (`PaperClaim.primary`); a row in any
#   other metric is reported with its effect and interval but is not judged;
# * **not testable (control … failed / not measured)**: a control the claim needs did not pass, so the
#   benchmark cannot judge it;
# * **negligible**: the whole interval lies inside ± the minimum effect of the metric's unit
#   (`deepmt.claims.MIN_EFFECTS`: 0.02 accuracy, 0.01 QWK, 0.1 dB, 0.03 map-energy share, …), whatever the p-value;
# * **not reproduced**: the interval rules out an improvement as large as the minimum effect (and reaches that
#   large an effect the other way);
# * **reproduced**: the interval lies above 0, the effect is at least the minimum and, where the row has a
#   p-value, its Holm-adjusted p (over every measured primary row) is below 0.05; a row without a p-value is
#   "not adjusted: no p-value" and the interval alone decides;
# * **inconclusive**: otherwise (too little evidence either way at this profile's size);
# * **not measured**: no notebook has produced the effect yet (run the notebook named in `evidence`).
#
# Both tables are built from `results/*controls*.csv` and `results/*claims*.csv`, which the other notebooks
# write; they are never edited by hand. `./run_all.sh` also writes them into the README, with the command,
# machine and time that made them.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick; only used to label the output
dataset = "synthetic"
data_root = ""

# %%
from IPython.display import Markdown

from deepmt.studies.verdicts import (claims_figure, claims_markdown, collect_claims, collect_controls, controls_markdown,
                                     controls_needed_markdown, regime_sentence, results_dir, save_figure, save_table,
                                     study_config, what_we_see)

cfg = study_config(profile, dataset, data_root)
smoke = cfg.profile == "smoke"
print(f"profile {cfg.profile}; controls and claims from {results_dir()}")

# %% [markdown]
# ## Data: every controls and claims file the notebooks wrote

# %%
controls = collect_controls()
claims = collect_claims(controls=controls)
print("controls from", sorted({e for e in controls["evidence"] if e}))
print("claims from", sorted({e for e in claims["evidence"] if isinstance(e, str) and e}))

# %% [markdown]
# ## Results: the controls first
#
# As registered: each control's object, requirement, the reason for its threshold, and the claims it gates.

# %%
display(Markdown(controls_needed_markdown()))

# %% [markdown]
# As measured, recomputed against the registry:

# %%
save_table(controls, "11_controls")
display(Markdown(controls_markdown(controls)))

# %% [markdown]
# ## Results: the claims, with the controls applied

# %%
save_table(claims, "11_verdicts")
print(regime_sentence(claims))
display(Markdown(claims_markdown(claims)))

# %% [markdown]
# ## Figures: effects with their 95% intervals over the band ± their minimum effect, one panel per unit (positive = in the paper's direction; secondary rows grey), controls beside them

# %%
fig = claims_figure(claims, controls, title="The paper's claims on the synthetic benchmark" + (" (smoke: not results)" if smoke else ""))
save_figure(fig, "11_claims");

# %% [markdown]
# ## What we see

# %%
print(what_we_see(claims, controls, smoke=smoke))
