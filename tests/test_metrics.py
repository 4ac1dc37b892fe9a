"""deepmt.metrics against scikit-learn / scikit-image and hand computations."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from deepmt import LESIONS
from deepmt import metrics as M
from deepmt.metrics import uncertainty as U
from deepmt.metrics.isr import _ssim_map_nchw

SEEDS = [0, 1, 2]


def _grading_data(seed: int, n: int = 300, signal: float = 0.3, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    p = rng.dirichlet(np.ones(5), n)
    p[np.arange(n), y] += signal
    p /= p.sum(1, keepdims=True)
    if ties:
        p = np.round(p, 1) + 1e-9 * np.arange(5)  # many tied scores; argmax still well defined
    return y, p


def _skimage_ssim(sr, hr, axis=0, **kw):
    return structural_similarity(
        hr, sr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=axis, **kw
    )


# =========================================================================== grading
@pytest.mark.parametrize("seed", SEEDS)
def test_grading_metrics_match_sklearn(seed):
    y, p = _grading_data(seed)
    pred = p.argmax(1)
    g = M.grading_metrics(y, p)
    labels = list(range(5))
    assert g["n"] == len(y)
    assert g["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert g["qwk"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))
    assert g["kappa_linear"] == pytest.approx(cohen_kappa_score(y, pred, weights="linear"))
    assert g["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert g["precision_weighted"] == pytest.approx(precision_score(y, pred, average="weighted"))
    assert g["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"))
    rec = recall_score(y, pred, labels=labels, average=None)
    for c in range(5):
        assert g[f"recall_{c}"] == pytest.approx(rec[c])
        assert g[f"auc_{c}"] == pytest.approx(roc_auc_score(y == c, p[:, c]))
    assert g["auc_ovr"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert 0.3 < g["accuracy"] < 1


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ties", [False, True])
def test_grading_batched_path_equals_sklearn_on_the_resample(seed, ties):
    """The vectorised bootstrap path (integer weights) gives what sklearn gives on the repeated rows."""
    y, p = _grading_data(seed, n=120, ties=ties)
    rng = np.random.default_rng(100 + seed)
    w = np.stack([np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y)) for _ in range(3)]).astype(float)
    w = np.vstack([np.ones(len(y)), w])
    batched = M.METRICS["grading"].batched(w, y, p)
    for b in range(len(w)):
        idx = np.repeat(np.arange(len(y)), w[b].astype(int))
        ref = M.grading_metrics(y[idx], p[idx])
        for k, v in ref.items():
            np.testing.assert_allclose(batched[k][b], v, rtol=1e-9, atol=1e-12, err_msg=f"{k} resample {b}")


def test_grading_ignores_ungraded_rows_and_accepts_tensors():
    y, p = _grading_data(3, n=100)
    y2 = np.concatenate([y, [-1, -1]])
    p2 = np.vstack([p, np.eye(5)[:2]])
    a, b = M.grading_metrics(y, p), M.grading_metrics(torch.from_numpy(y2), torch.from_numpy(p2).float())
    assert b["n"] == 100
    for k in a:
        assert b[k] == pytest.approx(a[k], abs=1e-6)


def test_grading_with_hard_predictions_and_degenerate_cases():
    y = np.array([0, 0, 1, 1, 2])
    g = M.grading_metrics(y, np.array([0, 1, 1, 1, 2]))
    assert g["accuracy"] == pytest.approx(0.8)
    assert math.isnan(g["auc_ovr"]) and math.isnan(g["ece"])
    assert math.isnan(g["recall_3"]) and math.isnan(g["recall_4"])  # grades absent from y_true
    # one class only: kappa undefined -> nan, no exception
    one = M.grading_metrics(np.zeros(6, int), np.zeros(6, int))
    assert one["accuracy"] == 1 and math.isnan(one["qwk"]) and math.isnan(one["auc_ovr"])
    # AUC only over the classes present
    y3, p3 = _grading_data(4, n=80)
    keep = y3 < 3
    g3 = M.grading_metrics(y3[keep], p3[keep])
    assert math.isnan(g3["auc_3"]) and not math.isnan(g3["auc_ovr"])
    assert g3["auc_ovr"] == pytest.approx(np.mean([g3[f"auc_{c}"] for c in range(3)]))
    empty = M.grading_metrics(np.array([-1, -1]), np.eye(5)[:2])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])


def test_confusion_matrix_matches_sklearn():
    y, p = _grading_data(5)
    np.testing.assert_array_equal(M.grading_confusion_matrix(y, p), confusion_matrix(y, p.argmax(1), labels=range(5)))
    cm = M.grading_confusion_matrix(np.r_[y, -1], np.vstack([p, p[:1]]), normalize="true")
    np.testing.assert_allclose(cm.sum(1), 1)


@pytest.mark.parametrize(
    "y, p, fragment",
    [
        (np.zeros(10, int), np.zeros((9, 5)), "(9, 5)"),
        (np.zeros(10, int), np.zeros((10, 4)), "(10, 4)"),
        (np.zeros((10, 1), int), np.zeros((10, 5)), "(10, 1)"),
        (np.zeros(10, int), np.zeros(9, int), "(9,)"),
        (np.full(3, 7), np.zeros((3, 5)), "outside"),
    ],
)
def test_grading_shape_errors(y, p, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        M.grading_metrics(y, p)


# =========================================================================== calibration
@pytest.mark.parametrize("seed", SEEDS)
def test_reliability_curve_matches_sklearn_and_ece(seed):
    y, p = _grading_data(seed, n=400)
    curve = M.reliability_curve(y, p, n_bins=10)
    conf, correct = p.max(1), (p.argmax(1) == y)
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=10, strategy="uniform")
    filled = curve["count"] > 0
    np.testing.assert_allclose(curve["accuracy"][filled], prob_true)
    np.testing.assert_allclose(curve["confidence"][filled], prob_pred)
    manual = sum(
        (curve["count"][b] / len(y)) * abs(curve["accuracy"][b] - curve["confidence"][b]) for b in np.flatnonzero(filled)
    )
    assert M.expected_calibration_error(y, p, n_bins=10) == pytest.approx(manual)
    assert curve["count"].sum() == len(y)


def test_ece_of_a_perfectly_calibrated_toy_is_zero():
    # confidence 1 and always right -> ECE 0; confidence 1 and always wrong -> ECE 1
    y = np.array([0, 1, 2])
    assert M.expected_calibration_error(y, np.eye(5)[y]) == pytest.approx(0)
    assert M.expected_calibration_error(y, np.eye(5)[(y + 1) % 5]) == pytest.approx(1)


# =========================================================================== ISR
@pytest.mark.parametrize("seed", SEEDS)
def test_psnr_ssim_match_skimage(seed):
    rng = np.random.default_rng(seed)
    hr = rng.random((3, 33 + seed, 40))
    sr = np.clip(hr + 0.08 * rng.standard_normal(hr.shape), 0, 1)
    assert M.psnr(sr, hr) == pytest.approx(peak_signal_noise_ratio(hr, sr, data_range=1.0), abs=1e-10)
    ref = _skimage_ssim(sr, hr, axis=0)
    assert M.ssim(sr, hr) == pytest.approx(ref, abs=1e-10)
    # (H, W, 3) layout, torch input and grayscale
    assert M.ssim(sr.transpose(1, 2, 0), torch.from_numpy(hr.transpose(1, 2, 0))) == pytest.approx(ref, abs=1e-10)
    assert M.ssim(sr[0], hr[0]) == pytest.approx(_skimage_ssim(sr[0], hr[0], axis=None), abs=1e-10)
    assert M.psnr(sr[1], hr[1]) == pytest.approx(peak_signal_noise_ratio(hr[1], sr[1], data_range=1.0), abs=1e-10)


def test_batched_psnr_ssim_equal_per_image():
    rng = np.random.default_rng(7)
    hr = rng.random((11, 3, 24, 24))
    sr = np.clip(hr + 0.1 * rng.standard_normal(hr.shape), 0, 1)
    ps, ss = M.psnr(sr, hr), M.ssim(sr, hr)
    assert ps.shape == ss.shape == (11,)
    for i in range(11):
        assert ps[i] == pytest.approx(peak_signal_noise_ratio(hr[i], sr[i], data_range=1.0))
        assert ss[i] == pytest.approx(_skimage_ssim(sr[i], hr[i]), abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_masked_psnr_ssim_match_manual_computation(seed):
    rng = np.random.default_rng(seed)
    hr = rng.random((3, 32, 32))
    sr = np.clip(hr + 0.1 * rng.standard_normal(hr.shape), 0, 1)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 10:25] = True
    mse = ((sr - hr) ** 2)[:, mask].mean()
    assert M.psnr(sr, hr, mask=mask) == pytest.approx(10 * np.log10(1 / mse))
    _, smap = _skimage_ssim(sr, hr, axis=0, full=True)  # (3, H, W) map
    smap = smap.mean(0)[5:-5, 5:-5]
    assert M.ssim(sr, hr, mask=mask[None]) == pytest.approx(smap[mask[5:-5, 5:-5]].mean(), abs=1e-10)
    # all-ones mask = unmasked; empty mask = nan
    assert M.ssim(sr, hr, mask=np.ones((32, 32))) == pytest.approx(M.ssim(sr, hr))
    assert math.isnan(M.psnr(sr, hr, mask=np.zeros((32, 32))))
    assert math.isnan(M.ssim(sr, hr, mask=np.zeros((32, 32))))


def test_psnr_ssim_errors_and_identity():
    x = np.random.default_rng(0).random((3, 16, 16))
    assert M.psnr(x, x) == math.inf and M.ssim(x, x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(3, 16, 15\)"):
        M.psnr(x, x[:, :, :15])
    with pytest.raises(ValueError, match="mask"):
        M.psnr(x, x, mask=np.ones((8, 8)))
    with pytest.raises(ValueError, match="at least 11"):
        M.ssim(x[:, :8, :8], x[:, :8, :8])


def test_lesion_region_dilates_with_a_disk_and_respects_fov():
    m = np.zeros((2, 4, 21, 21))
    m[0, 2, 10, 10] = 1
    r = M.lesion_region(m, dilation=3)
    assert r.shape == (2, 21, 21)
    assert r[0].sum() == 29 and r[1].sum() == 0  # disk of radius 3: 29 px
    fov = np.zeros((2, 1, 21, 21))
    fov[:, :, :, :11] = 1
    assert M.lesion_region(m, dilation=3, fov=fov)[0].sum() == 18  # columns <= 10: 1 + 5 + 5 + 7


def test_isr_metrics_global_fov_lesion_and_per_image():
    rng = np.random.default_rng(3)
    n, h = 5, 32
    hr = rng.random((n, 3, h, h)).astype(np.float32)
    sr = np.clip(hr + 0.05 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)
    sr[:, :, 12:20, 12:20] = np.clip(hr[:, :, 12:20, 12:20] + 0.3, 0, 1)  # lesion area reconstructed badly
    fov = np.zeros((n, 1, h, h))
    fov[:, :, 4:28, 4:28] = 1
    les = np.zeros((n, 4, h, h))
    les[:3, 0, 14:18, 14:18] = 1  # images 3 and 4 have no lesion
    per = M.isr_per_image(torch.from_numpy(sr), torch.from_numpy(hr), fov, les, lesion_dilation=2)
    out = M.isr_metrics(sr, hr, fov, les, lesion_dilation=2)
    region = M.lesion_region(les, dilation=2, fov=fov)
    for i in range(n):
        a, b = sr[i].astype(np.float64), hr[i].astype(np.float64)
        assert per["psnr"][i] == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0))
        assert per["ssim"][i] == pytest.approx(_skimage_ssim(a, b), abs=1e-9)
        assert per["psnr_fov"][i] == pytest.approx(M.psnr(a, b, mask=fov[i]))
        if i < 3:
            assert per["has_lesion"][i]
            assert per["psnr_lesion"][i] == pytest.approx(M.psnr(a, b, mask=region[i]))
            assert per["ssim_lesion"][i] == pytest.approx(M.ssim(a, b, mask=region[i]))
        else:
            assert not per["has_lesion"][i] and math.isnan(per["psnr_lesion"][i])
    assert out["n"] == 5 and out["n_lesion_images"] == 3
    assert out["psnr"] == pytest.approx(per["psnr"].mean())
    assert out["psnr_lesion"] == pytest.approx(per["psnr_lesion"][:3].mean())
    assert out["psnr_lesion"] < out["psnr_fov"]  # the damaged region is where the lesions are
    assert set(M.isr_metrics(sr, hr)) >= {"psnr", "ssim"} and math.isnan(M.isr_metrics(sr, hr)["psnr_fov"])


def test_isr_shape_errors():
    x = np.zeros((2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(2, 3, 16, 16\).*\(2, 3, 16, 8\)"):
        M.isr_metrics(x, x[..., :8])
    with pytest.raises(ValueError, match="fov"):
        M.isr_metrics(x, x, fov=np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="lesion_masks"):
        M.isr_metrics(x, x, lesion_masks=np.zeros((3, 4, 16, 16)))


# =========================================================================== segmentation
def _seg_data(seed: int, n: int = 6, h: int = 24, quantised: bool = False):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, 4, h, h)) < 0.08
    probs = np.clip(0.35 * masks + 0.65 * rng.random((n, 4, h, h)), 0, 1)
    if quantised:
        probs = np.round(probs * 10) / 10  # 11 distinct scores, far coarser than the histogram bins
    present = rng.random((n, 4)) < 0.8
    present[0] = True
    masks[1, 2] = False  # an annotated but empty mask
    return probs.astype(np.float32), masks, present


@pytest.mark.parametrize("seed", SEEDS)
def test_segmentation_exact_method_matches_sklearn(seed):
    probs, masks, present = _seg_data(seed)
    out = M.segmentation_metrics(probs, masks, present, method="exact")
    per = M.segmentation_per_image(probs, masks, present, method="exact")
    for l, name in enumerate(LESIONS):
        rows = [i for i in range(len(probs)) if present[i, l] and masks[i, l].any()]
        ap = [average_precision_score(masks[i, l].ravel(), probs[i, l].ravel()) for i in rows]
        auc = [roc_auc_score(masks[i, l].ravel(), probs[i, l].ravel()) for i in rows]
        dice = [2 * ((probs[i, l] >= 0.5) & masks[i, l]).sum() / ((probs[i, l] >= 0.5).sum() + masks[i, l].sum()) for i in rows]
        assert out[f"aupr_{name}"] == pytest.approx(np.mean(ap))
        assert out[f"auc_{name}"] == pytest.approx(np.mean(auc))
        assert out[f"dice_{name}"] == pytest.approx(np.mean(dice))
        assert out[f"n_images_{name}"] == len(rows)
        assert np.isnan(per["aupr"][~present[:, l], l]).all()
        ann = present[:, l]
        assert out[f"aupr_{name}_pooled"] == pytest.approx(average_precision_score(masks[ann, l].ravel(), probs[ann, l].ravel()))
        assert out[f"auc_{name}_pooled"] == pytest.approx(roc_auc_score(masks[ann, l].ravel(), probs[ann, l].ravel()))
    assert out["aupr"] == pytest.approx(np.mean([out[f"aupr_{n}"] for n in LESIONS]))


@pytest.mark.parametrize("seed", SEEDS)
def test_segmentation_histogram_method_agrees_with_sklearn(seed):
    probs, masks, present = _seg_data(seed, n=8, h=32)
    fast = M.segmentation_metrics(probs, masks, present)
    exact = M.segmentation_metrics(probs, masks, present, method="exact")
    for k in exact:
        assert fast[k] == pytest.approx(exact[k], abs=2e-3, nan_ok=True), k
    # exact when the scores are coarser than the bins (ties handled as sklearn does)
    probs, masks, present = _seg_data(seed, quantised=True)
    fast = M.segmentation_metrics(probs, masks, present)
    exact = M.segmentation_metrics(probs, masks, present, method="exact")
    for k in exact:
        assert fast[k] == pytest.approx(exact[k], abs=1e-10, nan_ok=True), k


def test_segmentation_per_image_vs_pooled_differ_on_a_constructed_case():
    """Image 0: a large lesion found perfectly; image 1: a one-pixel lesion missed; image 2: empty mask
    with a false positive; image 3: not annotated (its wrong prediction must not count)."""
    h = 20
    probs = np.zeros((4, 4, h, h), np.float32)
    masks = np.zeros((4, 4, h, h), bool)
    present = np.zeros((4, 4), bool)
    present[:3, 0] = True
    masks[0, 0, 2:12, 2:12] = True  # 100 px
    probs[0, 0, 2:12, 2:12] = 0.9
    masks[1, 0, 5, 5] = True
    probs[1, 0, 15, 15] = 0.9  # misses the lesion, one false positive
    probs[2, 0, 0, 0] = 0.9  # false positive on an empty mask
    probs[3, 0] = 0.9  # not annotated: ignored entirely
    masks[3, 0, 0, 0] = True
    out = M.segmentation_metrics(probs, masks, present)
    assert out["n_images_MA"] == 2  # the empty-mask image is not in the per-image average
    assert out["dice_MA"] == pytest.approx((1.0 + 0.0) / 2)
    assert out["iou_MA"] == pytest.approx(0.5)
    tp, fp, fn = 100, 2, 1
    assert out["dice_MA_pooled"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert out["iou_MA_pooled"] == pytest.approx(tp / (tp + fp + fn))
    # per-image AUPR: image 0 perfect (1.0); image 1: the positive ties with 398 negatives at score 0
    ap1 = average_precision_score(masks[1, 0].ravel(), probs[1, 0].ravel())
    assert out["aupr_MA"] == pytest.approx((1.0 + ap1) / 2)
    ann = present[:, 0]
    assert out["aupr_MA_pooled"] == pytest.approx(average_precision_score(masks[ann, 0].ravel(), probs[ann, 0].ravel()))
    assert out["aupr_MA_pooled"] != pytest.approx(out["aupr_MA"])
    for name in ("HE", "EX", "SE"):
        assert math.isnan(out[f"dice_{name}"]) and math.isnan(out[f"aupr_{name}_pooled"])
    assert out["dice"] == pytest.approx(out["dice_MA"])  # mean over lesions skips the unannotated ones


def test_segmentation_fov_restricts_pixels():
    probs, masks, present = _seg_data(9, n=3, h=16)
    fov = np.zeros((3, 1, 16, 16))
    fov[:, :, 2:14, 2:14] = 1
    inside = fov[:, 0] > 0.5
    out = M.segmentation_metrics(probs, masks, np.ones((3, 4), bool), fov=fov, method="exact")
    m = masks[:, 1][inside]
    assert out["auc_HE_pooled"] == pytest.approx(roc_auc_score(m, probs[:, 1][inside]))


def test_segmentation_errors():
    p = np.zeros((2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"\(2, 4, 8, 8\).*\(2, 3, 8, 8\)"):
        M.segmentation_metrics(p, np.zeros((2, 3, 8, 8)), np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="present"):
        M.segmentation_metrics(p, p, np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.segmentation_metrics(p + 2, p, np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="method"):
        M.segmentation_metrics(p, p, np.ones((2, 4), bool), method="fast")


# =========================================================================== uncertainty
def test_bootstrap_ci_contains_point_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 2000):
        x = rng.normal(1.0, 1.0, n)
        point, lo, hi = M.bootstrap_ci(np.mean, x, n_boot=500, seed=1)
        assert lo <= point <= hi and point == pytest.approx(x.mean())
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 3
    y, p = _grading_data(1, n=200)
    ci = M.bootstrap_ci(M.grading_metrics, y, p, n_boot=300)
    for k in ("accuracy", "qwk", "macro_f1", "auc_ovr", "ece"):
        point, lo, hi = ci[k]
        assert lo <= point <= hi and hi - lo > 0, k


def test_bootstrap_vectorised_path_equals_plain_loop():
    y, p = _grading_data(2, n=60)
    fast = M.bootstrap_ci(M.grading_metrics, y, p, n_boot=40, seed=5)
    slow = M.bootstrap_ci(M.grading_metrics, y, p, n_boot=40, seed=5, use_batched=False)
    for k in fast:
        np.testing.assert_allclose(fast[k], slow[k], rtol=1e-9, err_msg=k)
    x = np.r_[np.random.default_rng(0).random(30), np.nan]
    np.testing.assert_allclose(M.bootstrap_ci(np.nanmean, x, n_boot=50), M.bootstrap_ci(np.nanmean, x, n_boot=50, use_batched=False))
    np.testing.assert_allclose(M.bootstrap_ci(M.qwk, y, p, n_boot=30), M.bootstrap_ci(M.qwk, y, p, n_boot=30, use_batched=False))
    assert M.bootstrap_ci(M.qwk, y, p, n_boot=30, seed=3) == M.bootstrap_ci(M.qwk, y, p, n_boot=30, seed=3)


def test_bootstrap_of_grading_without_graded_images_is_nan_on_both_paths():
    """A segmentation-only split (every grade -1): the vectorised path says nan, like the plain loop."""
    y, p = np.full(4, -1), np.full((4, 5), 0.2)
    fast = M.bootstrap_ci(M.grading_metrics, y, p, n_boot=20)
    slow = M.bootstrap_ci(M.grading_metrics, y, p, n_boot=20, use_batched=False)
    for k in ("accuracy", "qwk", "auc_ovr", "ece"):
        assert np.isnan(fast[k]).all() and np.isnan(slow[k]).all(), k
    assert np.isnan(M.bootstrap_ci(M.auc_ovr, y, p, n_boot=20)).all()


def test_bootstrap_grading_is_vectorised():
    """1000 resamples of grading_metrics run in one vectorised pass: the metric itself runs once (the point
    estimate), not once per resample as on the plain loop (its speed is measured by the bench, not here)."""
    y, p = _grading_data(0, n=500)
    code, calls = M.grading_metrics.__code__, []

    def count(frame, event, arg):
        if event == "call" and frame.f_code is code:
            calls.append(1)

    for n_boot, batched, expected in ((1000, True, 1), (20, False, 21)):
        calls.clear()
        sys.setprofile(count)
        try:
            M.bootstrap_ci(M.grading_metrics, y, p, n_boot=n_boot, use_batched=batched)
        finally:
            sys.setprofile(None)
        assert len(calls) == expected, (batched, len(calls))


def test_paired_bootstrap_test():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    good = np.where(rng.random(300) < 0.9, y, rng.integers(0, 5, 300))
    bad = np.where(rng.random(300) < 0.5, y, rng.integers(0, 5, 300))
    r = M.paired_bootstrap_test(M.accuracy, y, good, bad, n_boot=500, seed=0)
    assert r["diff"] > 0.2 and r["lo"] > 0 and r["p_value"] < 0.05
    same = M.paired_bootstrap_test(M.accuracy, y, good, good.copy(), n_boot=200)
    assert same["diff"] == 0 and same["p_value"] == 1.0
    # dict-valued metric and y_true=None (per-image values)
    r2 = M.paired_bootstrap_test(M.grading_metrics, y, np.eye(5)[good], np.eye(5)[bad], n_boot=200)
    assert r2["qwk"]["p_value"] < 0.05
    a = rng.normal(30, 1, 100)
    r3 = M.paired_bootstrap_test(np.mean, None, a + 0.01 * rng.random(100), a, n_boot=200)
    assert r3["diff"] > 0 and r3["p_value"] < 0.05  # tiny but consistent paired improvement
    # unpaired noise of sd 1 (its mean 0.10 is 1 standard error): not significant (the seeds fix the outcome)
    r4 = M.paired_bootstrap_test(np.mean, None, a + rng.normal(0, 1, 100), a, n_boot=200, seed=0)
    assert r4["lo"] < 0 < r4["hi"] and r4["p_value"] > 0.2
    with pytest.raises(ValueError, match="pred_b"):
        M.paired_bootstrap_test(M.accuracy, y, good, bad[:10])


def test_bootstrap_errors():
    with pytest.raises(ValueError, match=r"\(10,\).*\(9, 5\)"):
        M.bootstrap_ci(M.grading_metrics, np.zeros(10, int), np.zeros((9, 5)))
    with pytest.raises(ValueError, match="alpha"):
        M.bootstrap_ci(np.mean, np.zeros(3), alpha=1.5)


def test_mean_std_and_formatting():
    m, s = M.mean_std([0.80, 0.82, np.nan, 0.84])
    assert m == pytest.approx(0.82) and s == pytest.approx(0.02)
    assert M.format_mean_std([0.80, 0.82, 0.84]) == "0.820 ± 0.020"
    assert M.format_mean_std(0.8123, 0.0131) == "0.812 ± 0.013"
    assert M.format_mean_std([0.8]) == "0.800"
    assert M.format_mean_std([]) == "n/a" and math.isnan(M.mean_std([])[0])
    assert M.format_ci(0.05, 0.01, 0.09, signed=True) == "+0.050 [+0.010, +0.090]"
    assert M.format_ci(0.5, math.nan, math.nan) == "0.500"


def test_ssim_torch_backend_equals_scipy_backend():
    rng = np.random.default_rng(4)
    hr = rng.random((2, 3, 20, 23))
    sr = np.clip(hr + 0.1 * rng.standard_normal(hr.shape), 0, 1)
    a = _ssim_map_nchw(sr, hr, 1.0, backend="scipy")
    b = _ssim_map_nchw(sr, hr, 1.0, backend="torch")
    assert a.shape == (2, 10, 13)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_bootstrap_numbers_are_pinned():
    """CIs and p-values on fixed inputs, to the last digit: computed before the bootstrap API became public
    (issue 14), so a refactoring of the resampling changes none of them."""
    y, p = _grading_data(4, n=80)
    _, q = _grading_data(5, n=80)
    g = M.bootstrap_ci(M.grading_metrics, y, p, n_boot=50, seed=3)
    assert g["accuracy"] == (0.525, 0.405625, 0.6096875)
    assert g["qwk"] == (0.3261921216309607, 0.0896559459166783, 0.48165530643337495)
    assert g["auc_ovr"] == (0.8926848264179599, 0.8486837343343779, 0.919676872882739)
    assert g["ece"] == (0.16043568602277775, 0.11207573830542167, 0.2707095371462177)
    assert M.bootstrap_ci(M.qwk, y, p, n_boot=50, seed=3) == g["qwk"]
    x = np.r_[np.random.default_rng(1).random(40), np.nan]
    assert M.bootstrap_ci(np.nanmean, x, n_boot=60, seed=2) == (0.5014464883737569, 0.415786402412583, 0.5888897701344898)
    assert M.paired_bootstrap_test(M.qwk, y, p, q, n_boot=100, seed=1) == {
        "diff": 0.16695063202620852, "lo": -0.13422029451273934, "hi": 0.451277557905207,
        "p_value": 0.33663366336633666, "a": 0.3261921216309607, "b": 0.15924148960475215, "n_boot": 100}
    a = np.random.default_rng(2).random(50)
    b = a - 0.05 + 0.1 * np.random.default_rng(3).random(50)
    assert M.paired_bootstrap_test(np.mean, None, a, b, n_boot=100, seed=4) == {
        "diff": -0.0011696307255814054, "lo": -0.009235757047034669, "hi": 0.007965174392599667,
        "p_value": 0.7128712871287128, "a": 0.5006504848721128, "b": 0.5018201155976942, "n_boot": 100}


def test_metric_registry_pairs_each_metric_with_its_batched_path():
    """``METRICS`` is the one place a vectorised path is found: it equals the metric on every resample, and no
    metric function carries a hidden attribute."""
    y, p = _grading_data(6, n=50)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(y), size=(4, len(y)))
    w = np.stack([np.bincount(i, minlength=len(y)) for i in idx]).astype(float)
    x = np.r_[rng.random(len(y) - 1), np.nan]
    for name, metric in M.METRICS.items():
        arrays = (x,) if name == "mean" else (y, p)
        got = metric.batched(w, *arrays)
        for b, rows in enumerate(idx):
            want = metric(*[a[rows] for a in arrays])
            if isinstance(want, dict):
                for k, v in want.items():
                    np.testing.assert_allclose(got[k][b], v, rtol=1e-9, atol=1e-12, err_msg=f"{name} {k}")
            else:
                np.testing.assert_allclose(got[b], want, rtol=1e-9, err_msg=name)
        assert not hasattr(metric.fn, "batched") and M.as_metric(metric.fn) is metric and M.as_metric(name) is metric
    assert M.as_metric(np.mean).batched is M.METRICS["mean"].batched and M.as_metric(np.mean).fn is np.mean
    assert M.as_metric(len).batched is None
    with pytest.raises(ValueError, match="unknown metric 'kappa'.*qwk"):
        M.as_metric("kappa")
    assert M.bootstrap_ci("qwk", y, p, n_boot=30, seed=2) == M.bootstrap_ci(M.qwk, y, p, n_boot=30, seed=2)


def test_paired_bootstrap_of_two_metrics():
    """The public paired API: two metrics (each with its own arrays) on the same images, resampled alike."""
    y, p = _grading_data(7, n=60)
    _, q = _grading_data(8, n=60)
    both = M.paired_bootstrap(M.qwk, (y, p), "qwk", (y, q), n_boot=80, seed=3)
    assert both == M.paired_bootstrap_test(M.qwk, y, p, q, n_boot=80, seed=3)
    assert both["diff"] == pytest.approx(M.qwk(y, p) - M.qwk(y, q))
    same = M.paired_bootstrap("accuracy", (y, p), M.Metric(M.accuracy), (y, p), n_boot=50)  # batched vs loop
    assert same["diff"] == 0 and same["lo"] == same["hi"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="same number of rows"):
        M.paired_bootstrap(M.qwk, (y, p), M.qwk, (y[:-1], q[:-1]), n_boot=10)


# --------------------------------------------------------------------------- intervals over seeds and images
def _seeded_effects(offsets, n=200, seed=0):
    """Per-seed arrays of A and B (one value per test image, ``np.mean`` the metric): image difficulty shared by
    every seed and both methods, A ahead of B by 0.1 + ``offsets[s]`` on seed ``s``, a little seed-level noise."""
    rng = np.random.default_rng(seed)
    x, e = rng.normal(0, 1, n), rng.normal(0, 0.5, n)
    b = [x + rng.normal(0, 0.05, n) for _ in offsets]
    a = [x + 0.1 + e + o + rng.normal(0, 0.05, n) for o in offsets]
    return [(v,) for v in a], [(v,) for v in b]


def test_hierarchical_interval_widens_when_seeds_disagree():
    """Same mean effect; per-seed effects spread apart -> a wider interval (the bootstrap's own, and the reported
    one); with seeds that agree, about the width of an image-only paired bootstrap of the seed-averaged values."""
    a, b = _seeded_effects([0.0, 0.0, 0.0, 0.0])
    agree = U.hierarchical_paired_bootstrap(np.mean, a, np.mean, b, n_boot=500)
    a2, b2 = _seeded_effects([-0.3, -0.1, 0.1, 0.3])
    spread = U.hierarchical_paired_bootstrap(np.mean, a2, np.mean, b2, n_boot=500)
    assert spread["diff"] == pytest.approx(agree["diff"])
    assert spread["boot_hi"] - spread["boot_lo"] > 2 * (agree["boot_hi"] - agree["boot_lo"])
    assert spread["hi"] - spread["lo"] > 3 * (agree["hi"] - agree["lo"])
    assert spread["interval"] == "seed t" and (spread["lo"], spread["hi"]) == (spread["t_lo"], spread["t_hi"])
    assert spread["p_value"] == spread["p_t"] > 0.05
    images = M.paired_bootstrap(np.mean, (np.mean([v for v, in a], 0),), np.mean, (np.mean([v for v, in b], 0),), n_boot=500)
    assert agree["interval"] == "hierarchical" and agree["diff"] == pytest.approx(images["diff"])
    assert 0.5 < (agree["hi"] - agree["lo"]) / (images["hi"] - images["lo"]) < 2


def test_hierarchical_bootstrap_of_one_seed_is_the_paired_bootstrap():
    """With one seed there is nothing to resample but the images: the same draws as paired_bootstrap, no t interval."""
    a, b = _seeded_effects([0.0])
    one = U.hierarchical_paired_bootstrap(np.mean, a, np.mean, b, n_boot=300, seed=3)
    plain = M.paired_bootstrap(np.mean, a[0], np.mean, b[0], n_boot=300, seed=3)
    assert (one["lo"], one["hi"], one["p_value"]) == (plain["lo"], plain["hi"], plain["p_value"])
    assert one["interval"] == "hierarchical" and math.isnan(one["t_lo"]) and one["n_seeds"] == 1
    with pytest.raises(ValueError, match="same number of seeds"):
        U.hierarchical_paired_bootstrap(np.mean, a, np.mean, b + b)
    with pytest.raises(ValueError, match="one number"):
        U.hierarchical_paired_bootstrap(M.grading_metrics, [(np.arange(5), np.eye(5))], M.grading_metrics,
                                        [(np.arange(5), np.eye(5))])


def test_seed_t_interval_is_scipys():
    """The issue's C1 example (-0.05 / +0.11 / -0.03 accuracy over 3 seeds): scipy.stats.t's interval and t-test."""
    from scipy import stats

    d = np.array([-0.05, 0.11, -0.03])
    lo, hi, p = U.seed_t_interval(d)
    want = stats.t.interval(0.95, df=2, loc=d.mean(), scale=stats.sem(d))
    assert (lo, hi) == pytest.approx(want, rel=1e-12) and (round(lo, 2), round(hi, 2)) == (-0.21, 0.23)
    assert p == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-12)
    assert U.seed_t_interval(d, alpha=0.1)[1] < hi
    assert all(math.isnan(v) for v in U.seed_t_interval([0.1]))
    assert U.seed_t_interval([0.1, 0.1]) == (0.1, 0.1, 0.0)


def test_hierarchical_bootstrap_ci_is_the_level_of_the_hierarchical_effect():
    """A level's interval over seeds and images: one seed gives bootstrap_ci's interval exactly; seeds that disagree
    widen it (the seed-level t interval)."""
    from deepmt.metrics.uncertainty import hierarchical_bootstrap_ci

    rng = np.random.default_rng(0)
    x = [rng.normal(m, 1.0, 300) for m in (0.0, 0.1, 2.0)]
    assert hierarchical_bootstrap_ci(M.as_metric(np.mean), [(x[0],)], n_boot=200, seed=3) == M.bootstrap_ci(np.mean, x[0], n_boot=200, seed=3)
    v, lo, hi = hierarchical_bootstrap_ci(M.as_metric(np.mean), [(a,) for a in x], n_boot=200)
    assert v == pytest.approx(np.mean([a.mean() for a in x])) and lo < v < hi and hi - lo > 2.0

