"""deepmt.studies.lesion_identity (notebook 01's MA-vs-smudge identity and its negative control): MA scores at the generator's
lesion centres, the MA-vs-smudge AUC against scikit-learn with its image bootstrap, and the table per dial setting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepmt import LESIONS
from deepmt.config import get_config
from deepmt.data import build_datasets
from deepmt.models.base import MethodOutput
from deepmt.studies import lesion_identity as LI

CFG = get_config("smoke", {"data.synth.smudge_match": 1.0, "data.n_test": 6})


class MapMethod(torch.nn.Module):
    """A stand-in for a trained method: its MA map is ``fn(batch)``, every other lesion map is 0."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, batch):
        hr = batch["hr"]
        probs = torch.zeros(hr.shape[0], len(LESIONS), *hr.shape[-2:])
        probs[:, LESIONS.index("MA")] = self.fn(batch)
        return MethodOutput(lesion_probs=probs)


@pytest.fixture(scope="module")
def test_ds():
    return build_datasets(CFG.data, ("test",))["test"]


def test_the_true_ma_mask_separates_mas_from_smudges_and_a_flat_map_does_not(test_ds):
    centres = LI.lesion_centres(test_ds, CFG.data)
    truth = LI.lesion_scores(MapMethod(lambda b: b["masks"][:, LESIONS.index("MA")]), test_ds, centres)
    assert set(truth["kind"]) == {"MA", "smudge"} and truth["image"].between(0, len(test_ds) - 1).all()
    ma, sm = truth[truth.kind == "MA"]["score"], truth[truth.kind == "smudge"]["score"]
    assert (ma == 1).mean() > 0.9 and (sm == 1).mean() < (ma == 1).mean()  # the window finds each MA's mask
    assert LI.identity_auc(truth, n_boot=50)["auc"] > 0.9
    flat = LI.lesion_scores(MapMethod(lambda b: torch.full(b["hr"].shape[:1] + b["hr"].shape[-2:], 0.3)), test_ds, centres)
    assert LI.identity_auc(flat, n_boot=50)["auc"] == pytest.approx(0.5)  # all ties: no separation
    assert len(flat) == len(truth) and (flat[["image", "kind", "x", "y"]] == truth[["image", "kind", "x", "y"]]).all().all()


def test_identity_auc_is_sklearns_auc_with_an_image_bootstrap():
    rng = np.random.default_rng(0)
    rows = [{"image": i, "kind": k, "score": rng.normal(1.0 if k == "MA" else 0.0)} for i in range(40) for k in ("MA", "smudge", "smudge")]
    scores = pd.DataFrame(rows)
    a = LI.identity_auc(scores, n_boot=300)
    assert a["auc"] == pytest.approx(roc_auc_score(scores.kind == "MA", scores.score))
    assert a["lo"] < a["auc"] < a["hi"] and a["n_ma"] == 40 and a["n_smudge"] == 80
    assert LI.identity_auc(scores, n_boot=300) == a  # seeded
    none = LI.identity_auc(scores[scores.kind == "MA"], n_boot=10)
    assert math.isnan(none["auc"]) and none["n_smudge"] == 0


def test_identity_table_averages_seeds_and_skips_settings_without_smudges(test_ds, monkeypatch):
    monkeypatch.setattr(LI, "test_split", lambda c: test_ds)
    truth, flat = (MapMethod(lambda b: b["masks"][:, LESIONS.index("MA")]),
                   MapMethod(lambda b: torch.full(b["hr"].shape[:1] + b["hr"].shape[-2:], 0.3)))
    runs = {0.0: {"deepmt_dr": [truth]}, 1.0: {"deepmt_dr": [truth, flat], "foo_mt_hr": [truth]}}
    t = LI.identity_table(runs, CFG, n_boot=50)
    assert list(zip(t.smudge_match, t.method, t.n_seeds)) == [(1.0, "deepmt_dr", 2), (1.0, "foo_mt_hr", 1)]
    both, alone = t.set_index("method").loc["deepmt_dr"], t.set_index("method").loc["foo_mt_hr"]
    assert 0.5 < both["auc"] <= alone["auc"]  # the mean of a separating and a flat map still separates, by rank
    assert alone["auc [95% CI]"].startswith(f"{alone['auc']:.3f} [") and alone["label"] == "Seg+grade multi-task on HR"
    text = LI.what_we_see(t)
    assert f"smudge_match 1: DeepMT-DR {both['auc [95% CI]']}, Seg+grade multi-task on HR {alone['auc [95% CI]']}." in text
    assert "nothing to tell apart" in LI.what_we_see(t.iloc[:0])


def test_identity_control_is_the_paired_auc_gain_of_deepmt_dr_over_its_twin(test_ds, monkeypatch):
    """negative:identity: DeepMT-DR's MA-vs-smudge AUC minus its no-ISR twin's, on the same lesions, with an image
    bootstrap that draws the same images for both. A map that tells MAs from smudges where its twin's does not
    recovers identity: the control fails; two maps alike gain nothing: it passes."""
    from deepmt import controls as K

    monkeypatch.setattr(LI, "test_split", lambda c: test_ds)
    truth, flat = (MapMethod(lambda b: b["masks"][:, LESIONS.index("MA")]),
                   MapMethod(lambda b: torch.full(b["hr"].shape[:1] + b["hr"].shape[-2:], 0.3)))
    recovered = LI.identity_control({"deepmt_dr": [truth], "deepmt_dr_noisr": [flat, flat]}, CFG, n_boot=50, evidence="01_x")
    centres = LI.lesion_centres(test_ds, CFG.data)
    gain = (LI.identity_auc(LI.seed_mean_scores([truth], test_ds, centres), n_boot=10)["auc"]
            - LI.identity_auc(LI.seed_mean_scores([flat], test_ds, centres), n_boot=10)["auc"])
    assert recovered.value == pytest.approx(gain) and recovered.lo > 0 and recovered.status == K.FAIL
    assert (recovered.id, recovered.object, recovered.n_seeds, recovered.evidence, recovered.regime) == (
        "negative:identity", K.TWIN_IDENTITY, 1, "01_x", "synthetic, smudge_match=1, x4, all masks")
    alike = LI.identity_control({"deepmt_dr": [flat], "deepmt_dr_noisr": [flat]}, CFG, n_boot=50)
    assert (alike.value, alike.lo, alike.hi, alike.status) == (0.0, 0.0, 0.0, K.PASS)


def test_identity_control_covers_training_seeds_when_the_twins_share_them(test_ds, monkeypatch):
    """With the twins trained on the same seeds, negative:identity is the mean of each seed's AUC difference with an
    interval over seeds and lesions' images: seeds that disagree (one recovers identity, one does not) widen it past
    what the image bootstrap of the seed-mean scores gives."""
    from types import SimpleNamespace

    monkeypatch.setattr(LI, "test_split", lambda c: test_ds)

    def seeded(fn, seed):
        m = MapMethod(fn)
        m.config = SimpleNamespace(train=SimpleNamespace(seed=seed))
        return m

    ma = lambda b: b["masks"][:, LESIONS.index("MA")]  # noqa: E731
    flat = lambda b: torch.full(b["hr"].shape[:1] + b["hr"].shape[-2:], 0.3)  # noqa: E731
    a, b = [seeded(ma, 0), seeded(flat, 1)], [seeded(flat, 0), seeded(flat, 1)]
    got = LI.identity_control({"deepmt_dr": a, "deepmt_dr_noisr": b}, CFG, n_boot=100)
    centres = LI.lesion_centres(test_ds, CFG.data)
    per_seed = [LI.identity_auc(LI.seed_mean_scores([x], test_ds, centres), n_boot=10)["auc"]
                - LI.identity_auc(LI.seed_mean_scores([y], test_ds, centres), n_boot=10)["auc"] for x, y in zip(a, b)]
    assert got.value == pytest.approx(np.mean(per_seed)) and got.n_seeds == 2
    pooled = LI.identity_control({"deepmt_dr": [MapMethod(ma), MapMethod(flat)], "deepmt_dr_noisr": [MapMethod(flat)] * 2},
                                 CFG, n_boot=100)  # no seeds to pair: the image bootstrap of seed-mean scores
    assert got.hi - got.lo > 2 * (pooled.hi - pooled.lo)
