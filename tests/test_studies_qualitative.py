"""deepmt.studies.qualitative.what_we_see (notebook 09) on hand-made crops and a hand-made real-photo result: the
text is written from the numbers (the crops, the models and the photo themselves are tested in
test_studies_attention.py)."""

import numpy as np
import pandas as pd

from deepmt import GRADES
from deepmt.studies import qualitative as Q

#: crop PSNR (dB) of each SR method in the two crops
PSNR = {"bicubic": (20.0, 21.0), "isr": (22.0, 22.5), "deepmt_dr": (23.0, 24.0)}


def _study(note: str = "", smoke: bool = False) -> Q.QualitativeStudy:
    picks = [{"index": k, "id": f"img{k}", "grade": g, "x": 16, "y": 16, "half": 8, "lesion": "MA"} for k, g in enumerate((1, 3))]
    images = [{"grade_probs": np.eye(5)[p] * 0.8 + 0.04} for p in (1, 2)]  # right on the grade-1 image, wrong on grade 3
    rows = [{"crop": k, "id": f"img{k}", "grade": picks[k]["grade"], "lesion": "MA", "x": 16, "y": 16, "size_px": 16,
             "method": m, "psnr_crop": v[k], "psnr_image": v[k] + 5} for k in range(2) for m, v in PSNR.items()]
    return Q.QualitativeStudy(picks, images, pd.DataFrame(rows), list(PSNR), "deepmt_dr", 4, note=note, smoke=smoke)


def _real(probs, fp32, area) -> Q.RealPhoto:
    table = pd.DataFrame({"grade": range(5), "grade_name": GRADES, "probability": probs, "probability_fp32": fp32})
    img = np.zeros((8, 8, 3))
    return Q.RealPhoto(raw=img, hr=img, lr=img, sr=img, fov=img[..., 0], probs=None, vis=None, grade_probs=np.asarray(fp32),
                       summary={"lesion_area_pct_fov": area}, table=table, method="deepmt_dr")


def test_what_we_see_crops_and_a_diseased_looking_normal_eye():
    real = _real([0.1, 0.6, 0.1, 0.1, 0.1], [0.1, 0.58, 0.12, 0.1, 0.1], {"MA": 2.5, "HE": 0.25})
    text = Q.what_we_see(_study(), real)
    assert text.startswith("Over the 2 crops around MA (16 px), the mean crop PSNR is DeepMT-DR 23.50 dB, Single-task ISR "
                           "22.25 dB, Bicubic 20.50 dB; DeepMT-DR is best in 2 of 2 crops.")
    assert "DeepMT-DR's SR is 1.25 dB above single-task ISR in these crops" in text
    assert "DeepMT-DR grades 1 of these 2 images correctly." in text
    assert f"predicts grade 1 ({GRADES[1]}) with probability 0.60 (P(no DR) = 0.10)." in text
    assert "Its lesion maps flag MA 2.5%, HE 0.2% of the field of view at p >= 0.5." in text
    assert "agree to 0.020 in probability" in text
    assert "A grade above 0 for a normal eye is the domain gap" in text and "up to 2.5% of a normal eye" in text
    assert "called normal" not in text and "smoke" not in text


def test_what_we_see_a_normal_eye_called_normal_notes_and_smoke():
    real = _real([0.9, 0.05, 0.03, 0.01, 0.01], [0.9, 0.05, 0.03, 0.01, 0.01], {"MA": 0.5})
    text = Q.what_we_see(_study(note="no test image has a MA mask: crops around any lesion instead", smoke=True), real)
    assert text.startswith("Note: no test image has a MA mask: crops around any lesion instead. Over the 2 crops")
    assert f"predicts grade 0 ({GRADES[0]}) with probability 0.90. " in text and "P(no DR)" not in text
    assert "The normal eye is called normal and nearly lesion-free, but one photo proves no accuracy." in text
    assert text.endswith("(smoke profile: tiny, barely trained models -- the figures check the mechanics; they are not results.)")
    # no crops, no real photo: only what there is
    empty = Q.QualitativeStudy([], [], pd.DataFrame(columns=["method", "psnr_crop"]), [], "deepmt_dr", 4)
    assert Q.what_we_see(empty) == ""
    no_isr = _study()
    no_isr.table = no_isr.table[no_isr.table.method != "isr"]
    assert "single-task ISR" not in Q.what_we_see(no_isr) and "DeepMT-DR is best in 2 of 2 crops" in Q.what_we_see(no_isr)
