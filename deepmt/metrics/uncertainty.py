"""Uncertainty: percentile bootstrap CIs over images, paired bootstrap tests between two methods on the same
images, an interval over training seeds and images together (:func:`hierarchical_paired_bootstrap`), the spread
across seeds, and how both are written in tables."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from deepmt.metrics.base import Metric, check_same_length, to_numpy
from deepmt.metrics.registry import as_metric


def _as_dict(value: Any) -> dict[str | None, float]:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if np.ndim(v) == 0:
                try:
                    out[k] = float(v)
                except (TypeError, ValueError):
                    pass
        return out
    if np.ndim(value) != 0:
        raise ValueError(f"metric_fn must return a number or a dict of numbers, got shape {np.shape(value)}")
    return {None: float(value)}


def _take(a: Any, idx: np.ndarray) -> Any:
    if a is None:
        return None
    if type(a).__module__.startswith("torch"):
        import torch

        return a[torch.from_numpy(idx)]
    return np.asarray(a)[idx]


def _bootstrap_samples(
    metric: Metric, arrays: Sequence[Any], n_boot: int, seed: int, use_batched: bool = True
) -> dict[str | None, np.ndarray]:
    """``metric`` on ``n_boot`` resamples of the rows of ``arrays`` -> {key: (n_boot,) values}.

    Resample ``b`` draws ``n`` row indices with replacement from ``np.random.default_rng(seed)``, in the
    same order for every metric, so two calls with the same seed and n see the same resamples (what a
    paired test needs). A metric with a batched path is evaluated on all resamples at once from the row
    multiplicities.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n = check_same_length(arrays)
    if n == 0:
        raise ValueError("cannot bootstrap zero rows")
    batched = metric.batched if use_batched else None
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // n))
    collected: dict[str | None, list[np.ndarray]] = {}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        if batched is not None:
            w = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
            res = batched(w, *arrays)
            res = dict(res) if isinstance(res, Mapping) else {None: res}
            for k, v in res.items():
                collected.setdefault(k, []).append(np.asarray(v, dtype=np.float64).reshape(b))
        else:
            rows = [_as_dict(metric.fn(*[_take(a, r) for a in arrays])) for r in idx]
            for k in rows[0]:
                collected.setdefault(k, []).append(np.array([row.get(k, np.nan) for row in rows]))
        done += b
    return {k: np.concatenate(v) for k, v in collected.items()}


def _percentiles(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    ok = samples[~np.isnan(samples)]
    if ok.size == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(ok, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_ci(
    metric_fn: Metric | str | Callable[..., Any], *arrays: Any, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
    use_batched: bool = True,
) -> tuple[float, float, float] | dict[str, tuple[float, float, float]]:
    """Percentile bootstrap confidence interval of ``metric_fn(*arrays)``, resampling rows (images).

    ``arrays`` share their first dimension (e.g. ``y_true (N,)`` and ``probs (N, 5)``, or one (N,) array of
    per-image PSNRs with ``metric_fn=np.mean``). Returns ``(point, lo, hi)``: the metric on all rows and the
    ``alpha/2`` and ``1 - alpha/2`` percentiles over ``n_boot`` resamples (resamples where the metric is
    undefined, nan, are left out). If ``metric_fn`` returns a dict (e.g. :func:`grading_metrics`), the result
    is a dict ``{name: (point, lo, hi)}`` for every numeric entry. ``metric_fn`` is anything
    :func:`as_metric` takes.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    metric = as_metric(metric_fn)
    point = _as_dict(metric.fn(*arrays))
    samples = _bootstrap_samples(metric, arrays, n_boot, seed, use_batched)
    out = {k: (v, *_percentiles(samples.get(k, np.array([np.nan])), alpha)) for k, v in point.items()}
    return out[None] if list(out) == [None] else out  # type: ignore[return-value]


def paired_bootstrap(
    metric_a: Metric | str | Callable[..., Any],
    arrays_a: Sequence[Any],
    metric_b: Metric | str | Callable[..., Any],
    arrays_b: Sequence[Any],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    use_batched: bool = True,
) -> dict[str, Any]:
    """Paired bootstrap of metric(A) - metric(B), where ``metric_a(*arrays_a)`` and ``metric_b(*arrays_b)`` are
    two methods' numbers whose arrays have one row per image, the same images in the same order.

    Every resample draws the same image indices for both (the same ``seed`` and number of rows), so image
    difficulty cancels. The two metrics may differ (e.g. each averages over its own training seeds); each is
    anything :func:`as_metric` takes. Returns ``diff`` = metric(A) - metric(B) on all images, ``lo``/``hi`` the
    ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled differences, a two-sided ``p_value`` =
    2 * min(share of resampled differences <= 0, share >= 0) with the usual +1 correction
    ((k + 1) / (n_boot + 1)), capped at 1 (small when the interval excludes 0, 1 for identical methods), ``a``,
    ``b`` (the two point values) and ``n_boot`` (resamples where both are defined). For dict-valued metrics
    the result is ``{name: {...}}``.
    """
    ma, mb = as_metric(metric_a), as_metric(metric_b)
    check_same_length([*arrays_a, *arrays_b])
    pa, pb = _as_dict(ma.fn(*arrays_a)), _as_dict(mb.fn(*arrays_b))
    sa = _bootstrap_samples(ma, arrays_a, n_boot, seed, use_batched)
    sb = _bootstrap_samples(mb, arrays_b, n_boot, seed, use_batched)
    out: dict[str | None, dict[str, Any]] = {}
    for k in pa:
        d = sa.get(k, np.full(n_boot, np.nan)) - sb.get(k, np.full(n_boot, np.nan))
        d = d[~np.isnan(d)]
        lo, hi = _percentiles(d, alpha)
        p = _two_sided_p(d)
        out[k] = {"diff": pa[k] - pb.get(k, math.nan), "lo": lo, "hi": hi, "p_value": float(p), "a": pa[k], "b": pb.get(k, math.nan), "n_boot": int(d.size)}
    return out[None] if list(out) == [None] else out  # type: ignore[return-value]


def paired_bootstrap_test(
    metric_fn: Metric | str | Callable[..., Any],
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    use_batched: bool = True,
) -> dict[str, Any]:
    """Paired bootstrap comparison (:func:`paired_bootstrap`) of methods A and B evaluated on the same images
    with one metric: ``metric_fn(y_true, pred_a)`` vs ``metric_fn(y_true, pred_b)``.

    ``y_true`` may be ``None`` when ``metric_fn`` takes only the predictions (e.g. ``np.mean`` of
    per-image PSNRs). Returns what :func:`paired_bootstrap` returns.
    """
    args_a = (pred_a,) if y_true is None else (y_true, pred_a)
    args_b = (pred_b,) if y_true is None else (y_true, pred_b)
    names = ["pred_a"] if y_true is None else ["y_true", "pred_a"]
    check_same_length([*args_a, pred_b], names + ["pred_b"])
    return paired_bootstrap(metric_fn, args_a, metric_fn, args_b, n_boot=n_boot, seed=seed, alpha=alpha, use_batched=use_batched)


def _two_sided_p(d: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference" from the resampled differences ``d`` (nan removed):
    2 * min(share <= 0, share >= 0) with the +1 correction, capped at 1; nan without resamples."""
    if not d.size:
        return math.nan
    return min(1.0, 2 * (min((d <= 0).sum(), (d >= 0).sum()) + 1) / (d.size + 1))


def _scalar(metric: Metric, arrays: Sequence[Any]) -> float:
    value = _as_dict(metric.fn(*arrays))
    if list(value) != [None]:
        raise ValueError("the hierarchical bootstrap needs a metric that returns one number, not a dict")
    return value[None]


def seed_t_interval(per_seed: Any, alpha: float = 0.05) -> tuple[float, float, float]:
    """``(lo, hi, p_value)``: the Student-t interval of the mean of ``per_seed`` (one effect per training seed),
    mean ± t(1 - alpha/2, S - 1) · sd / sqrt(S), and the two-sided one-sample t-test p-value of "mean 0".
    All nan for fewer than 2 seeds; with every seed equal the interval is the point and p is 0 (1 when it is 0)."""
    from scipy import stats

    d = to_numpy(per_seed, "per_seed").astype(np.float64).ravel()
    if d.size < 2 or np.isnan(d).any():
        return math.nan, math.nan, math.nan
    mean, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    if se == 0:
        return mean, mean, 1.0 if mean == 0 else 0.0
    q = float(stats.t.ppf(1 - alpha / 2, d.size - 1))
    return mean - q * se, mean + q * se, float(2 * stats.t.sf(abs(mean) / se, d.size - 1))


def hierarchical_paired_bootstrap(
    metric_a: Metric | str | Callable[..., Any],
    arrays_a: Sequence[Sequence[Any]],
    metric_b: Metric | str | Callable[..., Any],
    arrays_b: Sequence[Sequence[Any]],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    use_batched: bool = True,
) -> dict[str, Any]:
    """metric(A) - metric(B) with an interval over training seeds *and* test images, A and B paired by seed and by
    image. ``arrays_a[s]`` / ``arrays_b[s]`` are seed ``s``'s arrays (``metric_a(*arrays_a[s])``), one row per
    test image, the same images in the same order for every seed and both methods; ``arrays_a[s]`` and
    ``arrays_b[s]`` come from the same training seed. The effect is the mean over seeds of the per-seed
    differences ``d_s = metric_a(*arrays_a[s]) - metric_b(*arrays_b[s])``.

    Two intervals, and the wider of them (``hi - lo``) is the one reported:

    * **hierarchical bootstrap**: each resample draws S seeds with replacement, then the test images with
      replacement (one draw for all the drawn seeds and both methods, since every seed is scored on the same
      test set), and averages the drawn seeds' differences on those images; percentile interval, two-sided
      p-value as in :func:`paired_bootstrap`. Image draws are those of :func:`paired_bootstrap` with the same
      ``seed``; seed draws come from ``np.random.default_rng([seed, 1])``.
    * **seed t**: :func:`seed_t_interval` of the per-seed effects ``d_s`` (needs 2 seeds or more). With few
      seeds, resampling them is coarse (3 seeds give 10 distinct sets) and understates their spread by a
      factor (S - 1) / S in variance: the t interval is there for when it is the wider one.

    Returns ``diff``, ``lo``/``hi`` and ``p_value`` of the wider interval, ``interval`` (``"hierarchical"`` or
    ``"seed t"``; the bootstrap on a tie), both intervals (``boot_lo``, ``boot_hi``, ``p_boot``; ``t_lo``,
    ``t_hi``, ``p_t``), ``per_seed`` (the ``d_s``), ``a`` and ``b`` (each metric averaged over the seeds),
    ``n_seeds``, ``n_images`` and ``n_boot`` (resamples where the effect is defined).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if len(arrays_a) != len(arrays_b) or not len(arrays_a):
        raise ValueError(f"need the same number of seeds (>= 1) for A and B, got {len(arrays_a)} and {len(arrays_b)}")
    ma, mb = as_metric(metric_a), as_metric(metric_b)
    n = check_same_length([x for xa, xb in zip(arrays_a, arrays_b) for x in (*xa, *xb)])
    per_a = np.array([_scalar(ma, xa) for xa in arrays_a])
    per_b = np.array([_scalar(mb, xb) for xb in arrays_b])
    per_seed = per_a - per_b
    n_seeds = per_seed.size
    # (S, n_boot): each seed's difference on every image resample (the same image draws for every seed)
    on_images = np.stack([_bootstrap_samples(ma, xa, n_boot, seed, use_batched)[None]
                          - _bootstrap_samples(mb, xb, n_boot, seed, use_batched)[None]
                          for xa, xb in zip(arrays_a, arrays_b)])
    drawn = np.random.default_rng([seed, 1]).integers(0, n_seeds, size=(n_boot, n_seeds))
    boot = on_images[drawn, np.arange(n_boot)[:, None]].mean(axis=1)
    boot = boot[~np.isnan(boot)]
    boot_lo, boot_hi = _percentiles(boot, alpha)
    p_boot = _two_sided_p(boot)
    t_lo, t_hi, p_t = seed_t_interval(per_seed, alpha)
    use_t = not math.isnan(t_lo) and (math.isnan(boot_lo) or t_hi - t_lo > boot_hi - boot_lo)
    lo, hi, p = (t_lo, t_hi, p_t) if use_t else (boot_lo, boot_hi, p_boot)
    return {"diff": float(per_seed.mean()), "lo": lo, "hi": hi, "p_value": float(p),
            "interval": "seed t" if use_t else "hierarchical",
            "boot_lo": boot_lo, "boot_hi": boot_hi, "p_boot": float(p_boot), "t_lo": t_lo, "t_hi": t_hi, "p_t": p_t,
            "per_seed": per_seed, "a": float(per_a.mean()), "b": float(per_b.mean()), "n_seeds": int(n_seeds),
            "n_images": int(n), "n_boot": int(boot.size)}


#: a metric that is 0 on any rows and resamples: :func:`hierarchical_bootstrap_ci` is an effect against it
_ZERO = Metric(lambda *arrays: 0.0, lambda weights, *arrays: np.zeros(np.shape(weights)[0]))


def hierarchical_bootstrap_ci(metric: Metric | str | Callable[..., Any], arrays: Sequence[Sequence[Any]], n_boot: int = 1000,
                              seed: int = 0, alpha: float = 0.05, use_batched: bool = True) -> tuple[float, float, float]:
    """``(value, lo, hi)``: ``metric`` averaged over training seeds (``arrays[s]``: seed ``s``'s arrays, the same test
    images in the same order for every seed) with an interval over the seeds *and* the images: the interval
    :func:`hierarchical_paired_bootstrap` gives the effect of ``metric`` against a metric that is 0 everywhere
    (seeds, then images, resampled; or the seed-level t interval when wider). A level's counterpart of that effect,
    for the controls that read one method's number; with one seed, :func:`bootstrap_ci`'s interval."""
    e = hierarchical_paired_bootstrap(metric, arrays, _ZERO, arrays, n_boot=n_boot, seed=seed, alpha=alpha,
                                      use_batched=use_batched)
    return e["diff"], e["lo"], e["hi"]


def mean_std(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) across seeds, skipping nan; std is nan for one value."""
    a = to_numpy(values, "values").astype(np.float64).ravel()
    a = a[~np.isnan(a)]
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan


def format_mean_std(values_or_mean: Any, std: float | None = None, digits: int = 3) -> str:
    """``"0.812 ± 0.013"`` from values across seeds (or from a mean and a std); ``"0.812"`` for one seed."""
    if std is None:
        mean, std = mean_std(values_or_mean)
    else:
        mean = float(values_or_mean)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f}" if std is None or math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_ci(point: float, lo: float, hi: float, digits: int = 3, signed: bool = False) -> str:
    """``"0.812 [0.790, 0.833]"`` (``signed=True``: ``"+0.052 [+0.021, +0.083]"`` for effects)."""
    if point is None or math.isnan(point):
        return "n/a"
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return f.format(point)
    return f"{f.format(point)} [{f.format(lo)}, {f.format(hi)}]"
