"""Evaluation metrics of DeepMT-DR: grading, super-resolution (ISR), lesion segmentation, uncertainty.

NumPy in (torch tensors are accepted and converted), plain ``dict`` / ``float`` out. Every function is
NaN-safe: a metric that is undefined on the given data (no positive pixel, one class only, an empty mask)
comes out as ``nan`` instead of raising, while inputs of the wrong shape raise ``ValueError`` naming the
shapes.

The metrics follow the paper (Wang et al., AAAI 2021; summarised in ``docs/METHOD.md``), one module per concern:

* **Grading** (:mod:`~deepmt.metrics.grading`, :func:`grading_metrics`): accuracy, quadratic-weighted Cohen's
  kappa (QWK), linear kappa, macro-F1, weighted precision / F1, per-grade recall ("per-class accuracy"),
  one-vs-rest ROC-AUC and the expected calibration error (:mod:`~deepmt.metrics.calibration`, with the
  reliability diagram). Rows with grade ``-1`` (no grade) are ignored. scikit-learn is the reference.
* **ISR** (:mod:`~deepmt.metrics.isr`, :func:`psnr`, :func:`ssim`, :func:`isr_metrics`): PSNR on [0, 1] images
  and SSIM with an 11-px Gaussian window, sigma 1.5 -- numerically the same as ``skimage.metrics``
  (``gaussian_weights=True, use_sample_covariance=False``) on the whole image, and also restricted to the field
  of view and to (dilated) lesion regions, where the task-aware loss is meant to help.
* **Segmentation** (:mod:`~deepmt.metrics.segmentation`, :func:`segmentation_metrics`): per lesion (MA, HE, EX,
  SE) AUPR (average precision) and ROC-AUC, Dice and IoU at a threshold; averaged over the images that contain
  the lesion (as the paper) and pooled over all pixels.
* **Uncertainty** (:mod:`~deepmt.metrics.uncertainty`, :func:`bootstrap_ci`, :func:`paired_bootstrap`,
  :func:`paired_bootstrap_test`, :func:`mean_std`): percentile bootstrap over images, paired tests between two
  methods on the same images, spread across seeds.

**Metric registry** (:mod:`~deepmt.metrics.registry`). :data:`METRICS` maps a metric's name to a
:class:`Metric`: the function and its vectorised bootstrap path (``batched(weights, *arrays)``: the metric on
every resample at once, each resample a row of integer weights = how often each image was drawn), so 1000
resamples of 500 images take well under a second. The bootstrap functions take a :class:`Metric`, a registered
name or function (its batched path is looked up), or any callable (resampled one by one).

What the modules share (array conversion, shape checks, the :class:`Metric` record) is in
:mod:`~deepmt.metrics.base`. The modules import in one direction: base -> calibration -> grading -> registry ->
uncertainty; isr and segmentation need only base. Import the public names from here (``from deepmt import
metrics as M``).
"""

from deepmt.metrics.base import N_GRADES, Metric, to_numpy
from deepmt.metrics.calibration import expected_calibration_error, reliability_curve
from deepmt.metrics.grading import (
    accuracy,
    auc_ovr,
    grading_confusion_matrix,
    grading_metrics,
    linear_kappa,
    macro_f1,
    qwk,
)
from deepmt.metrics.isr import isr_metrics, isr_per_image, lesion_region, psnr, ssim
from deepmt.metrics.registry import METRICS, as_metric, nanmean
from deepmt.metrics.segmentation import segmentation_metrics, segmentation_per_image
from deepmt.metrics.uncertainty import (
    bootstrap_ci,
    format_ci,
    format_mean_std,
    mean_std,
    paired_bootstrap,
    paired_bootstrap_test,
)

__all__ = [
    "N_GRADES",
    "Metric",
    "METRICS",
    "as_metric",
    "to_numpy",
    "grading_metrics",
    "grading_confusion_matrix",
    "accuracy",
    "qwk",
    "linear_kappa",
    "macro_f1",
    "auc_ovr",
    "expected_calibration_error",
    "reliability_curve",
    "psnr",
    "ssim",
    "lesion_region",
    "isr_per_image",
    "isr_metrics",
    "segmentation_per_image",
    "segmentation_metrics",
    "nanmean",
    "bootstrap_ci",
    "paired_bootstrap",
    "paired_bootstrap_test",
    "mean_std",
    "format_mean_std",
    "format_ci",
]
