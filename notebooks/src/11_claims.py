# %% [markdown]
# # 11 The claims table: what reproduces, what does not
#
# **Summarises** every claim of the paper that the notebooks test (`deepmt.claims.PAPER_CLAIMS`): its text, the
# comparison that tests it, our effect with its 95% confidence interval, the number of training seeds behind it,
# and a verdict computed from those numbers by one rule (`deepmt.claims.verdict`):
#
# * **reproduced**: the interval of the effect lies above 0 (in the direction the paper claims);
# * **not reproduced**: the interval rules out an improvement;
# * **inconclusive**: the interval holds 0 (too little evidence either way at this profile's size);
# * **not measured**: no notebook has produced the effect yet (run the notebook named in `evidence`).
#
# The table is built from `results/*claims*.csv`, which notebooks 01, 02, 04, 05 and 07 write; it is never
# edited by hand. `./run_all.sh` also writes it into the README, with the command, machine and time that made it.

# %% tags=["parameters"]
profile = ""  # "" -> $DEEPMT_PROFILE (smoke in CI) or quick; only used to label the output
dataset = "synthetic"
data_root = ""

# %%
import matplotlib.pyplot as plt
import numpy as np

from deepmt.claims import claims_markdown, collect_claims
from deepmt.reporting import results_dir, save_figure, save_table
from deepmt.studies.common import study_config

cfg = study_config(profile, dataset, data_root)
smoke = cfg.profile == "smoke"
print(f"profile {cfg.profile}; claims from {results_dir()}")

# %% [markdown]
# ## Data: every claims file the notebooks wrote

# %%
claims = collect_claims()
print(sorted({str(e) for e in claims["evidence"] if isinstance(e, str)}))

# %% [markdown]
# ## Results

# %%
save_table(claims, "11_verdicts")
display(claims[["id", "metric", "comparison", "effect", "lo", "hi", "n_seeds", "verdict", "evidence"]])
from IPython.display import Markdown

display(Markdown(claims_markdown(claims)))

# %% [markdown]
# ## Figures: effects with their 95% intervals (positive = in the paper's direction)

# %%
measured = claims[np.isfinite(claims["effect"])].reset_index(drop=True)
fig, ax = plt.subplots(figsize=(7, 0.42 * max(len(measured), 1) + 1.2))
colors = {"reproduced": "#27ae60", "not reproduced": "#c0392b", "inconclusive": "#7f8c8d"}
for i, r in measured.iterrows():
    lo, hi = (r["lo"], r["hi"]) if np.isfinite(r["lo"]) else (r["effect"], r["effect"])
    ax.plot([lo, hi], [i, i], color=colors.get(r["verdict"], "k"), lw=2)
    ax.plot(r["effect"], i, "o", color=colors.get(r["verdict"], "k"))
ax.axvline(0, color="k", lw=0.8)
ax.set_yticks(range(len(measured)), [f"{r.id} {r.metric}" for r in measured.itertuples()])
ax.invert_yaxis()
ax.set_xlabel("effect A − B (metric units; see the table for each comparison)")
ax.set_title("The paper's claims on the synthetic benchmark" + (" (smoke: not results)" if smoke else ""))
fig.tight_layout()
save_figure(fig, "11_claims");

# %% [markdown]
# ## What we see

# %%
counts = claims.groupby("id")["verdict"].agg(lambda v: ", ".join(f"{k}: {n}" for k, n in v.value_counts().items()))
print(
    f"{len(measured)} of {len(claims)} claim rows are measured. Per claim (metric rows by verdict): "
    + "; ".join(f"{cid} ({c})" for cid, c in counts.items()) + ". "
    "A claim counts as reproduced on this benchmark only if its interval excludes zero in the paper's direction; "
    "'inconclusive' means this profile's test set and seeds cannot decide it."
    + (" (smoke profile: mechanics only, these numbers are not results.)" if smoke else "")
)
