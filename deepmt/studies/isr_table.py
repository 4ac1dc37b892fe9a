"""Table 05 (notebook 05): PSNR / SSIM over the whole image and inside lesion regions, claim C6 and the ``sr_works``
controls (what the tables share: :mod:`deepmt.studies.paper_tables`).
"""

from __future__ import annotations

from typing import Any, Sequence

from deepmt.config import Config
from deepmt.controls import controls_table, regime_of
from deepmt.reporting import save_figure, save_table
from deepmt.studies.common import (
    ISR_METRICS,
    SMOKE_NOTE,
    describe_config,
    effects_table,
    run_methods,
    sentences,
    study_config,
    study_seeds,
)
from deepmt.studies.paper_tables import ci_table, effect_claims, effect_control, plot_metric_bars, verdict_list

ISR_METHODS = ("bicubic", "srcnn", "edsr", "isr", "deepmt_dr")


def isr_table(cfg: Config, seeds: Sequence[int], methods: Sequence[str] = ISR_METHODS, n_boot: int = 1000) -> dict[str, Any]:
    """Table 05: PSNR / SSIM over the whole image and inside lesion regions (masks dilated by 3 px).

    Every method uses ``seeds`` (metrics averaged over them). Claim C6: DeepMT-DR vs single-task ISR (the
    same ISR architecture trained with the pixel loss only) inside lesion regions. Controls ``sr_works:*``:
    each learned single-task SR method vs bicubic PSNR.
    """
    runs = run_methods(methods, cfg, seeds)  # bicubic trains nothing: its "seeds" are the same numbers, cheap
    metrics = list(ISR_METRICS)
    ci = ci_table(runs, metrics, n_boot)
    pairs = [("deepmt_dr", m) for m in methods if m != "deepmt_dr"] if "deepmt_dr" in methods else []
    sr_controls = [m for m in ("srcnn", "edsr", "isr") if m in methods]
    if "bicubic" in methods:
        pairs += [(m, "bicubic") for m in sr_controls]
    effects = effects_table(runs, pairs, metrics, n_boot)
    regime, ev = regime_of(cfg), "05_isr_table"
    claims = effect_claims("C6", effects, "deepmt_dr", "isr", ("psnr_lesion", "ssim_lesion"), ev, regime=regime)
    controls = controls_table([effect_control(f"sr_works:{m}", effects, m, "bicubic", "psnr", ev, regime) for m in sr_controls])
    return {"runs": runs, "table": ci, "effects": effects, "claims": claims, "controls": controls,
            "smoke": cfg.profile == "smoke"}


def what_we_see_05(res: dict[str, Any]) -> str:
    """Notebook 05's "what we see", written from :func:`isr_table`'s result: PSNR over the image and in lesion
    regions, DeepMT-DR against single-task ISR and bicubic, the ``sr_works`` controls and the C6 verdicts."""
    t = res["table"].set_index("method")
    return (
        f"PSNR over the whole image: bicubic {t.loc['bicubic', 'psnr']:.2f} dB, single-task ISR {t.loc['isr', 'psnr']:.2f} dB, "
        f"DeepMT-DR {t.loc['deepmt_dr', 'psnr']:.2f} dB; inside lesion regions: bicubic {t.loc['bicubic', 'psnr_lesion']:.2f} dB, "
        f"single-task ISR {t.loc['isr', 'psnr_lesion']:.2f} dB, DeepMT-DR {t.loc['deepmt_dr', 'psnr_lesion']:.2f} dB. "
        + sentences(res["effects"], ("deepmt_dr", "isr", "psnr_lesion"), ("deepmt_dr", "isr", "ssim_lesion"),
                    ("deepmt_dr", "bicubic", "psnr")) + ". "
        + "Controls: " + "; ".join(f"{r.id} {r.value:+.2f} dB ({r.status})" for r in res["controls"].itertuples()) + ". "
        + "Verdicts (C6, before controls): " + verdict_list(res["claims"]) + "."
        + (SMOKE_NOTE if res["smoke"] else "")
    )


__all__ = [
    "ISR_METHODS", "isr_table", "what_we_see_05",
    # what notebook 05 calls besides
    "ISR_METRICS", "plot_metric_bars", "describe_config", "study_config", "study_seeds", "save_figure", "save_table",
]
