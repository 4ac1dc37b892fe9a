"""The synthetic fundus benchmark: fundus-like photos with lesion masks and a DR grade, made on the fly.

No public package ships DR grades or lesion masks, so deepmt generates its own labelled benchmark,
designed (``docs/BENCHMARK.md``) so that the paper's premise can be *measured*: the grade depends on
small lesions that nearly vanish after the paper's x4 bicubic downsampling.

What an image holds (sizes in px at :attr:`SynthConfig.size_reference` = 256 and scaled with ``hr_size``)
---------------------------------------------------------------------------------------------------------
* **Fundus**: circular field of view (FOV) on black, orange-red pigment with smooth colour variation and
  choroidal texture, vignetting, a darker macula with a foveal reflex, a bright optic disc with a cup,
  a branching, tapering tree of arteries and veins whose temporal arcades arch around the macula, camera
  grain. With ``background="retina"`` the lesions are composited on scikit-image's real fundus photo
  (``skimage.data.retina()``), randomly rotated, flipped, scaled and colour-jittered.
* **Lesions (masked)**: MA = microaneurysms, tiny dark-red dots (Gaussian sigma ``ma_sigma`` 0.8-1.1 px,
  darkening ``ma_contrast`` 0.6-0.85); HE = haemorrhages: dot (sigma 1.2-2 px), blot (irregular,
  radius 2.5-4.5 px) and flame-shaped (elongated along the nerve fibres, radial from the disc);
  EX = hard exudates, bright yellow spots in clusters or circinate rings near the macula;
  SE = soft exudates (cotton-wool spots), pale fluffy patches near the disc and arcades.
* **Neovascularisation (NV)**: in grade 4 only, a tuft of fine tortuous loops at the disc rim (NVD) or on
  an arcade (NVE). NOT masked (real datasets do not mask NV); ``has_nv`` is in the metadata.
* **Preretinal haemorrhage** (``preretinal_he``, on by default): in grade 4 only, one large boat-shaped
  haemorrhage with a flat upper edge (blood settled under gravity; radius 8-12 px), masked as HE. The
  ICDR scale counts vitreous/preretinal haemorrhage as a sign of PDR, as NV. It makes grade 4 learnable
  from the lesion masks: an unmasked NV tuft alone is a cue that a grader trained from grade labels does
  not find (the lesion-supervised grader on HR stayed below 0.8 accuracy, its grade 3/4 recall 0.3-0.6,
  and even the true lesion counts per quadrant only reached 0.78 without ``has_nv``). With
  ``preretinal_he=False`` grade 4 is signalled by the unmasked NV tuft alone (generator version 2's
  benchmark, apart from the random draws).
* **Distractors (not lesions, not masked)**, in every grade: MA-coloured smudges (sigma ``smudge_sigma``
  1.6-2 px) whose peak after degradation equals that of an MA drawn from the MA prior times
  ``smudge_match`` (at HR a smudge peaks at about half an MA; at LR they look alike at 1.0, while the
  default 0.8 leaves an MA about 1.3x darker than a smudge on average: degraded but present), brown pigment
  spots, white reflections beside vessels, a pale haze near the disc, natural vessel crossings, and (with
  probability ``nv_decoy_prob``) a *decoy* NV tuft: the same tuft blurred, with its LR peak set to
  ``nv_match`` x the real tuft's, so NV is a cue at HR but not at LR.
* **Count matching**: MA + smudges together are drawn uniformly from ``dot_total`` (15-27) in every grade,
  so counting dark dots says nothing about the grade; only their shape (visible at HR) does.

Grades (ICDR-like rules, see :func:`~deepmt.data.synthetic.rules.grade_rules_text`; the grade is drawn first from
the class prior, then lesions satisfying its rule, and the rule is re-checked by
:func:`~deepmt.data.synthetic.rules.grade_from_lesions`).

Class priors: ``balanced`` (1/5 each; the default, because with DDR's imbalance grade 1 is 5% of the data
and the key effect drowns) and ``ddr``: the gradable DDR images (Li et al. 2019: 6266 / 630 / 4477 / 236 /
913 of grades 0-4, the 1151 ungradable left out) -> [0.500, 0.050, 0.358, 0.019, 0.073].
Grades are assigned by a golden-ratio low-discrepancy sequence, so any n has close to the prior's
proportions and every sample is still a pure function of (seed, split, index).

Modules (one concern each)
--------------------------
* :mod:`~deepmt.data.synthetic.rules`       grade rules, class priors, the grade sequence, sample ids
* :mod:`~deepmt.data.synthetic.draw`        drawing primitives (pixel-integrated blobs, compositing, noise) and the palette
* :mod:`~deepmt.data.synthetic.vessels`     the vessel tree and neovascular tufts
* :mod:`~deepmt.data.synthetic.lr_peaks`    LR peak matching of distractors to lesions
* :mod:`~deepmt.data.synthetic.background`  the procedural fundus or the real photo (:class:`Scene`)
* :mod:`~deepmt.data.synthetic.placement`   the lesion plan of a grade and where lesions go
* :mod:`~deepmt.data.synthetic.lesions`     the masked lesions; :mod:`~deepmt.data.synthetic.distractors` the rest
* :mod:`~deepmt.data.synthetic.generate`    one sample: :func:`generate_sample`
* :mod:`~deepmt.data.synthetic.store`       the cache of generated splits; :mod:`~deepmt.data.synthetic.dataset` a split as a Dataset
* :mod:`~deepmt.data.synthetic.export`      ``python -m deepmt data synth OUT``

What the benchmark is *for* -- MA that separate from smudges at HR but hardly at LR -- is measured, and shown,
by notebook 00's study, :mod:`deepmt.studies.benchmark`.
"""

from deepmt.data.synthetic.dataset import SyntheticFundus
from deepmt.data.synthetic.export import run_synth_command
from deepmt.data.synthetic.generate import GENERATOR_VERSION, META_COLUMNS, generate_sample
from deepmt.data.synthetic.rules import (
    GRADE_PRIORS,
    QUADRANTS,
    SPLIT_IDS,
    grade_for_index,
    grade_from_lesions,
    grade_rules_text,
    quadrant_of,
    sample_id,
)
from deepmt.data.synthetic.store import build_synthetic_splits, cache_key, split_size

__all__ = [
    "GRADE_PRIORS",
    "GENERATOR_VERSION",
    "META_COLUMNS",
    "QUADRANTS",
    "SPLIT_IDS",
    "SyntheticFundus",
    "build_synthetic_splits",
    "cache_key",
    "generate_sample",
    "grade_for_index",
    "grade_from_lesions",
    "grade_rules_text",
    "quadrant_of",
    "run_synth_command",
    "sample_id",
    "split_size",
]
