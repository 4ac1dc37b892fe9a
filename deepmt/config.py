"""One config system for deepmt: nested dataclasses and three named profiles.

The dataclass defaults are the paper's settings; each profile is a visible dict of overrides of them
(:data:`PROFILE_OVERRIDES`; ``paper`` overrides nothing):

* ``smoke``  – CI: every code path in seconds on a CPU. Its numbers are not results.
* ``quick``  – a 2-core CPU (each run minutes; the whole replication hours); the default of ``./run_all.sh``.
* ``paper``  – a GPU at the authors' sizes (HR 1024, LR 256, ISR 32 ch x 5 blocks,
  U-Net base 64 with 5 levels, full-width ResNet-18).

Use :func:`get_config` to build one, optionally with dotted overrides::

    cfg = get_config("quick", {"train.seed": 1, "data.scale": 8})

The profile defaults to the ``DEEPMT_PROFILE`` environment variable (``quick`` if unset),
so CI can run every notebook under ``smoke`` without editing it.

Each sub-config is owned by one part of the package (data, models, losses, engine); the
docstrings say which paper setting each field reproduces.

Every setting, its range (:data:`ALLOWED`) and the profiles read as one table in this file (nanoGPT's single config
in one hop); only the mechanics of converting and checking a value, which know no setting by name, live in
:mod:`deepmt.config_checks`, and how configs stored by earlier versions are read, and what cache keys hash, in
:mod:`deepmt.config_compat`.

Every override is checked before anything runs (:func:`check_setting`): the key must name a field, and the
value must fit the field's annotated type (``int``, ``float``, ``bool``, ``str``, ``X | None``, tuples) and
its entry in :data:`ALLOWED` (range or choices; a number without an entry must be >= 0). Strings, as typed
after ``--set KEY=``, are parsed by that type. Anything else is a :class:`deepmt.errors.SettingError` naming
the key, the value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from deepmt.config_checks import Allowed, convert, did_you_mean, field_types
from deepmt.config_compat import KEY_FIXED_VALUES, KEY_NEUTRAL_DEFAULTS, STORED_DEFAULTS, comparable_config
from deepmt.errors import SettingError

# --------------------------------------------------------------------------- data
@dataclass
class SynthConfig:
    """Dials of the synthetic fundus benchmark (see ``deepmt.data.synthetic``).

    Microaneurysms so small that they nearly vanish after x4 bicubic downsampling, and MA-coloured
    smudge distractors whose LR peak is ``smudge_match`` times an MA's, so that at LR the two are hard
    to tell apart while at HR they separate clearly. ``smudge_match`` is the benchmark's
    LR-information dial: at 1.0 LR keeps (almost) nothing to tell an MA from a smudge (MA-vs-smudge peak
    ROC-AUC 0.53 at LR vs 0.96 at HR, quick size, x4: ``results/00_lr_information_dial.csv``), so nothing can
    recover grade 1 from LR; at 0.8 (the default) a little is left (AUC 0.58 at LR, 0.97 at HR); at 0 there
    are no smudges. Notebook 00 measures it, notebook 01 sweeps training over it.
    """

    class_prior: str = "balanced"  # "balanced" or "ddr" (DDR-like imbalance)
    background: str = "procedural"  # "procedural" or "retina" (composited on skimage.data.retina())
    ma_sigma: tuple[float, float] = (0.8, 1.1)  # HR px at 256-px reference size
    ma_contrast: tuple[float, float] = (0.6, 0.85)
    smudge_match: float = 0.8  # smudge LR peak = this x an MA's; 1.0: LR keeps no MA information; 0: no smudges
    nv_match: float = 1.0  # decoy NV tufts, LR peak = nv_match x a real tuft's (1: matched; 0: no decoys)
    size_reference: int = 256  # lesion sizes are given in px at this HR size and scaled with hr_size
    ma_count: tuple[int, int] = (8, 15)  # MA per image in grades 1-2 (grades 3-4: +2..+5 more)
    dot_total: tuple[int, int] = (15, 27)  # MA + smudges per image in every grade (count matching)
    smudge_sigma: tuple[float, float] = (1.6, 2.0)  # HR px at size_reference
    severe_he_per_quadrant: int = 3  # grade 3 rule: at least this many haemorrhages in each of the 4 quadrants
    nv_decoy_prob: float = 0.5  # probability of a decoy NV tuft in an image (every grade), when nv_match > 0
    preretinal_he: bool = True  # grade 4 also gets a large preretinal haemorrhage, masked as HE (makes grade 4 learnable)


@dataclass
class DegradationConfig:
    """HR -> LR degradation (``deepmt.data.degradation.degrade``). Paper: bicubic x4."""

    blur_sigma: float = 0.0  # extra Gaussian blur (HR px) before downsampling
    noise_std: float = 0.0  # additive Gaussian noise on the LR image, [0, 1] units
    jpeg_quality: int | None = None  # JPEG-compress the LR image at this quality


@dataclass
class DataConfig:
    """Dataset, sizes and splits; the defaults are the paper's (HR 1024, LR 256 via x4, HR crops of 256)."""

    dataset: str = "synthetic"  # synthetic | idrid | idrid-seg | ddr | ddr-seg | messidor1 | messidor2 | aptos | eyepacs
    root: str | None = None  # dataset root for real datasets (None for synthetic)
    hr_size: int = 1024  # HR side in px (paper: 1024)
    scale: int = 4  # HR/LR ratio: 2, 4 or 8 (paper: 4)
    crop_size: int | None = 256  # HR random-crop size for training (paper: 256); None = whole image
    # HR random-crop size for the training stages that do not grade (super-resolution, segmentation; taken after
    # crop_size): they learn from local patches, so a crop costs a fraction of an image for the same kind of step.
    # Stages that grade always see whole images (the grade rules count lesions per quadrant). None = no extra crop
    nongrading_crop_size: int | None = None
    n_train: int = 2000  # synthetic only
    n_val: int = 300
    n_test: int = 500
    val_fraction: float = 0.15  # stratified validation split for real datasets without one
    seed: int = 0  # data seed (synthetic generation and split), independent of the training seed
    augment: bool = True  # joint image+mask flips/rotations for training
    mask_fraction: float = 1.0  # training images that keep their lesion masks (rest grade-only; DDR: 757/13,673)
    label_fraction: float = 1.0  # training images that keep grade + masks (rest unlabelled HR images: the ISR's only)
    num_workers: int = 8
    synth: SynthConfig = field(default_factory=SynthConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)

    @property
    def lr_size(self) -> int:
        return self.hr_size // self.scale


# --------------------------------------------------------------------------- models
@dataclass
class ISRConfig:
    """ISR subnet: conv3x3 3->C + LeakyReLU, residual blocks, log2(scale) x2 upsamplers, conv -> 3."""

    channels: int = 32
    n_resblocks: int = 5
    upsampler: str = "transposed"  # "transposed" (authors' code) or "pixelshuffle"
    global_skip: bool = True  # residual learning around the bicubic upsampling (starts at bicubic)


@dataclass
class SegConfig:
    """Lesion segmentation U-Net with parallel 3x3/5x5 blocks and deep supervision."""

    base_channels: int = 64
    levels: int = 5
    deep_supervision: bool = True


@dataclass
class GraderConfig:
    """Grading subnet: ResNet-18 (7-channel stem) + spatial pyramid pooling + FC-512-dropout-FC-5."""

    width: int = 64  # ResNet-18 stem width (64 = torchvision's full ResNet-18)
    spp_levels: tuple[int, ...] = (1, 2, 4)
    fc_hidden: int = 512
    dropout: float = 0.5
    use_lesion_maps: bool = True  # False: ablation "without segmentation" (3-channel input)
    spp_pool: str = "max"  # spatial pyramid pooling: "max" (SPP-net, the paper) or "avg" (notebook 08's diagnosis)
    # diagnosis only (notebook 08): the grader reads the ground-truth lesion masks instead of Seg's probabilities,
    # in training and at test time: the grading pathway's ceiling with a perfect segmentation (needs every mask)
    oracle_maps: bool = False


@dataclass
class VisConfig:
    """Visualization map: Grad-CAM-style maps of several ResNet stages fused coarse-to-fine."""

    stages: tuple[int, ...] = (2, 3, 4)  # ResNet layers whose activations are used
    feature_selection: bool = True  # lesion-oriented feature selection
    iou_threshold: float = 0.05  # drop feature maps whose IoU with the lesion maps is below this
    binarize_threshold: float = 0.5  # for IoU and for the journal's pseudo masks


@dataclass
class ModelConfig:
    isr: ISRConfig = field(default_factory=ISRConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    grader: GraderConfig = field(default_factory=GraderConfig)
    vis: VisConfig = field(default_factory=VisConfig)


# --------------------------------------------------------------------------- losses
@dataclass
class LossConfig:
    """Weights of every loss term; a weight of 0 switches the term off (ablations).

    ISR loss = pixel(SR, HR) + tv * TV(SR) + seg_aware * MSE(seg(SR), seg(HR))
             + cls_aware * MSE(vis(SR), vis(HR)) + grading_feedback * grading loss,
    grading loss = CE + vis_consistency * MSE(vis map, lesion map).

    ``seg_aware`` / ``cls_aware`` / ``grading_feedback`` are the authors' weights (1 / 10 / 1). Beside a
    mean-over-pixels MSE they make the feedback's gradient on the ISR 10^1-10^4 times the pixel term's, so
    by default (``feedback_scaling="calibrated"``) each feedback term with a non-zero weight is rescaled at
    the start of stage 2 so that its gradient on the ISR parameters is ``feedback_ratio`` times the pixel
    term's (measured over ``calibration_batches`` batches; the weight then only switches the term on or off).
    ``feedback_scaling="authors"`` reproduces the authors' weighting exactly.
    """

    isr_pixel: str = "mse"  # "mse" or "l1"
    tv: float = 1e-6
    seg_dice: float = 1.0
    seg_focal: float = 1.0
    # which (image, lesion) pairs the per-image soft Dice averages: "skip" (default since 2026-12-06) = only pairs
    # whose mask has a lesion pixel; "include" = every annotated pair (the literal reading: an empty mask asks for an
    # all-zero map, and for a rare lesion those pairs dominate; notebook 06). Focal sees every annotated pair
    seg_dice_empty: str = "skip"
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    seg_aware: float = 1.0  # segmentation-aware term
    cls_aware: float = 10.0  # classification-aware term
    grading_feedback: float = 1.0  # grading loss fed back into ISR
    vis_consistency: float = 0.3  # visualization map vs lesion map
    feedback_scaling: str = "calibrated"  # "authors": the weights above as given; "calibrated": see below
    feedback_ratio: float = 0.5  # calibrated: each feedback term's gradient on the ISR = this x the pixel term's
    calibration_batches: int = 4  # calibrated: stage-2 training batches over which the gradient norms are measured
    unsupervised: float = 0.0  # journal extension: pseudo masks from the binarised visualization map
    class_weights: str | tuple[float, ...] = "auto"  # "auto" (inverse training frequency), "none", or 5 weights
    seg_weight_in_joint: float = 1.0  # weight of the supervised segmentation loss in stage 2
    seg_deep: float = 1.0  # deep supervision: weight of the side outputs' mean (Dice + focal) loss
    seg_on_hr: bool = True  # stage 1a also trains segmentation on HR images (stage 1b grades [HR, seg(HR)])
    # stage 1b's grader input: "hr" = [HR, Seg(HR)] (the paper); "sr" = [SR, Seg(SR)] from the LR input, the path the
    # grader is validated and tested on (an ablation of the paper's schedule, notebook 08)
    stage1b_input: str = "hr"
    # stage 2: the grading loss also trains the segmentation subnet through the lesion maps it feeds the grader
    # ("attached"); False = the maps reach the grader detached, segmentation learns from its own losses only
    grading_into_seg: bool = False


# --------------------------------------------------------------------------- engine
@dataclass
class TrainConfig:
    """Optimisation and run settings; batch, learning rate and epochs default to the paper profile's."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where supported, fp16+scaler on old GPUs) | fp32 | bf16 | fp16
    channels_last: bool = True
    batch_size: int = 8  # every profile: many small steps (segmentation of MA needs steps more than images)
    eval_batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-4
    epochs_stage1a: int = 100  # ISR + segmentation on the segmentation set
    epochs_stage1b: int = 100  # grading + fusion on HR images, segmentation frozen
    epochs_stage2: int = 50  # joint fine-tuning with the task-aware loss
    epochs_single: int = 100  # single-task and two-stage baselines (per trained part)
    # epochs of named methods: {"foo_mt": 72} replaces a baseline's epochs_single, {"deepmt_dr.stage1b": 72} one
    # stage's epochs of a method trained by stage. For a method whose validation curve is still rising when the
    # others have levelled off (notebook 03). Resolved per method by method_config before a run's cache key is
    # made, so an entry for one method changes no other method's key.
    epochs_by_method: dict[str, int] = field(default_factory=dict)
    # batch and peak learning rate of a stage that trains a grader alone on fixed inputs (DeepMT-DR's stage 1b, the
    # grader baselines, two-stage's grading stage: no pixel task shares its steps); None = batch_size / lr
    grading_batch_size: int | None = None
    grading_learning_rate: float | None = None
    # factors on every stage's peak learning rate and epochs (epochs rounded, at least 1), after everything above: a
    # configuration tuned relative to a method's own settings (table 04's tuning budget), the same in every profile
    lr_scale: float = 1.0
    epochs_scale: float = 1.0
    lr_stage2_factor: float = 0.1  # stage 2 learning rate = lr * this (paper fine-tunes with a small lr)
    grad_clip: float | None = 5.0
    stage2_max_psnr_drop: float = 0.5  # stage 2 keeps no epoch whose val PSNR is this many dB below stage 1's
    selection_metric: str = "qwk"  # validation metric for model selection (grading); psnr / dice for other tasks
    log_every: int = 10
    # validate (and so select) after every val_every-th epoch of a stage and after its last; 1 = every epoch. A stage
    # validates at least val_min_points times where it has the epochs (a shorter one more often than val_every): so
    # notebook 03's levelled-off rule sees more than one point in a short stage's last third; 0 = no minimum
    val_every: int = 1
    val_min_points: int = 0
    # early stopping: a stage ends once this many epochs have passed since its best validated epoch (checked after
    # each validated epoch; the best epoch is kept, as always). 0 = off: every stage trains all its epochs. The
    # learning-rate schedule still spans the stage's epochs, so a stopped stage never anneals: use it where the
    # curves level off long before the end (notebook 03)
    patience: int = 0
    # which epoch a stage that trains several subnets keeps: "per_module" = a subnet with a validation metric of its
    # own (Method.selection_groups) at its own best validated epoch, the rest at the stage's selection metric
    # (DeepMT-DR's stage 1a: the ISR at its best PSNR, the segmentation at its best AUPR); "joint" = the whole
    # stage at its selection metric's best epoch (until 2026-12-07: it rolled the ISR back to the AUPR-best epoch)
    module_selection: str = "per_module"
    progress: bool = True
    # torch CPU threads of a run (trainer: torch.set_num_threads; the runner's workers also set OMP_NUM_THREADS).
    # Part of the run's key because CPU results depend on it; 0 = torch's default (all cores: machine-dependent).
    threads: int = 1
    # torch.use_deterministic_algorithms for the run (and cuDNN without autotuning). On the CPU it costs little
    # (a fill of each new buffer) and makes a run bit-reproducible. On a GPU it also makes runs repeatable (two
    # smoke runs on an H200: bit-identical), at a price: deterministic kernels are slower (paper profile at
    # 1024 px, stage 2: 8.8 vs 12.9 img/s); false trades that for speed, and then two runs differ in the last bits.
    deterministic: bool = True

    def validation_interval(self, n_epochs: int) -> int:
        """Epochs between two validations of a stage of ``n_epochs`` epochs (its last is always validated):
        ``val_every``, shortened to ``n_epochs // val_min_points`` (at least 1) where that is fewer."""
        every = max(1, int(self.val_every))
        if int(self.val_min_points) > 0:
            every = min(every, max(1, int(n_epochs) // int(self.val_min_points)))
        return every


@dataclass
class Config:
    profile: str = "paper"  # the defaults above are the paper profile's settings
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----------------------------------------------------------------- helpers
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self, *extra: Any) -> str:
        """A stable short hash of the full config (plus ``extra``), for caches. Fields at their entry in
        :data:`KEY_NEUTRAL_DEFAULTS` are left out (:func:`comparable_config`), so adding them changed no key."""
        blob = json.dumps([comparable_config(self.to_dict()), [str(e) for e in extra]], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, overrides: Mapping[str, Any] | None = None, **kw: Any) -> "Config":
        """A copy with dotted overrides applied (``{"train.seed": 1}`` or ``train__seed=1``)."""
        new = copy.deepcopy(self)
        items = dict(overrides or {})
        items.update({k.replace("__", "."): v for k, v in kw.items()})
        for dotted, value in items.items():
            _set_dotted(new, dotted, value)
        return new


# --------------------------------------------------------------------------- profiles
#: Each profile's settings as dotted overrides of the dataclass defaults above, which are the paper's
#: settings (so ``paper`` overrides nothing). ``get_config(p)`` is ``Config(profile=p)`` with these applied.
PROFILE_OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": {
        "data.hr_size": 64,
        "data.crop_size": None,
        "data.n_train": 16,
        "data.n_val": 8,
        "data.n_test": 8,
        "data.num_workers": 0,
        "model.isr.channels": 8,
        "model.isr.n_resblocks": 1,
        "model.seg.base_channels": 8,
        "model.seg.levels": 3,
        "model.grader.width": 8,
        "model.grader.fc_hidden": 32,
        "model.grader.spp_levels": (1, 2),  # as quick at the same size (so smoke asks for the quick grid's shape)
        "train.eval_batch_size": 8,
        "train.lr": 2e-3,
        "train.epochs_stage1a": 1,
        "train.epochs_stage1b": 1,
        "train.epochs_stage2": 1,
        "train.epochs_single": 1,
        "train.progress": False,
    },
    "quick": {
        # sized for a 2-core CPU: 64-px HR (paper 1024; 96 until 2026-12-06). Lesions keep the pilot's pixel sizes
        # (size_reference = hr_size): MA sigma 0.8-1.1 HR px, so they nearly vanish at LR 16 px
        "data.hr_size": 64,
        "data.crop_size": None,  # paper: HR crops of 256 for every stage
        "data.synth.size_reference": 64,
        "data.nongrading_crop_size": 32,  # stages that do not grade: 32 / 8 px crops (paper 256 / 64 for all)
        "data.n_train": 600,
        "data.n_val": 150,
        "data.n_test": 300,
        "data.num_workers": 0,
        "model.isr.channels": 16,
        "model.isr.n_resblocks": 2,
        "model.seg.base_channels": 8,
        "model.seg.levels": 3,
        "model.grader.width": 12,
        "model.grader.fc_hidden": 128,
        # SPP levels that fit the grader's last feature map (2 x 2 at 64 px; paper (1, 2, 4) on a 32 x 32 map at
        # 1024 px, where a level of 4 on a 2 x 2 map pools copies of 4 cells). Chosen on validation among notebook 08's
        # grading-pathway fixes (3 seeds, 2026-12-07: QWK 0.953 vs 0.909, accuracy 0.836 vs 0.729); the best baseline
        # gets the same tuning budget (deepmt.studies.grading_table.BASELINE_TUNING)
        "model.grader.spp_levels": (1, 2),
        "train.eval_batch_size": 64,
        "train.lr": 2e-3,
        # a stage that trains a grader alone (DeepMT-DR's stage 1b, the grader baselines) on batches of 32 at twice
        # the rate (paper: one batch for all): 1.7x / 2.3x less time per image at 64 px, and DeepMT-DR graded alike
        # on 3 seeds (docs/PERFORMANCE.md, 2026-12-06); the stages that segment keep batches of 8 (MA needs steps)
        "train.grading_batch_size": 32,
        "train.grading_learning_rate": 4e-3,
        "train.val_every": 3,  # validate (and select) every 3rd epoch and the last (paper: every epoch) ...
        # ... but at least 6 times a stage: stage 2 (6 epochs) every epoch, so that notebook 03's levelled-off rule
        # reads more than two points (64-px rehearsal, 2026-12-06: at every 3rd, stage 2 read as levelled on 7 of 15)
        "train.val_min_points": 6,
        # trained to convergence; notebook 03 checks that every curve has levelled off. Measured (benchmark v3,
        # smudge_match 0.8, seed 0, 2-core CPU, 2026-11-30): the lesion-supervised HR net (foo_mt_hr) reached
        # 0.843 test accuracy at 18 epochs and 0.947 at 36 (0.900 at 18 with twice the widths, at about twice
        # the FLOPs of 36 narrow epochs); DeepMT-DR's stage-1b grader was still at 0.61 validation accuracy after
        # 12 epochs; stage 1a's validation AUPR peaked at epoch 5 of 15 and its PSNR levelled off by epoch 13
        # stage 1a at 30 (15 until 2026-12-07): at 15 its mean AUPR was still rising on 16 of 23 runs of the 64-px
        # rehearsal; at 30 it levelled off on 3 of 3 seeds (shares 0.017 / 0.020 / 0.011, AUPR 0.746 / 0.726 / 0.745
        # against 0.709 / 0.711 / 0.720 at 15)
        "train.epochs_stage1a": 30,
        "train.epochs_stage1b": 36,
        "train.epochs_stage2": 6,
        "train.epochs_single": 36,
        # the baselines whose validation curves were still rising at 36 epochs on 2 of 3 seeds (notebook 03's
        # rule, quick run of 2026-11-30: foo_mt 11% / 13% of the gain in the last third, grader_lr 12% / 11%,
        # unet_bicubic 21% on seed 0) got twice the epochs; every other method's key is unchanged. At 72,
        # unet_bicubic's seed 2 was still rising (19% of its gain in the last third; validation AUPR 0.50 -> 0.61
        # over epochs 40-72), so it gets twice that again. foo_mt's QWK levelled off by epoch 36 at 64 px (seed 0,
        # 2026-12-06: 4% of its gain in epochs 24-36; 0.962 by 36, 0.969 by 72): 36 again. unet_bicubic back at 72
        # (2026-12-07, 64 px, seeds 0-2, the rule of docs/PERFORMANCE.md stated before the runs): validation mean AUPR
        # 0.761 vs 0.778 at 144 (within the 0.02 minimum), levelled off on 3 of 3 seeds, half the time
        # stage 2 per method (paper: 50 epochs; until 2026-12-07 6 for both, at which notebook 03 found DeepMT-DR's stage 2
        # still rising on seed 2 and its twin's on seed 0). Chosen on validation QWK by notebook 03's rule, stated before
        # the runs (docs/RESULTS.md, 64 px, seeds 0-2, warm-started from the grid's stage 1): DeepMT-DR levelled on 3 of
        # 3 seeds at 12; the twin on 2 of 3 at 24, its seed 0 still rising at 24, 30 and 36 (last-third shares 0.157 /
        # 0.130 / 0.124; validation QWK 0.888 -> 0.951 / 0.961 / 0.969), so by the rule it takes 36 and the claims
        # against it say so
        "train.epochs_by_method": {"grader_lr": 72, "unet_bicubic": 72, "deepmt_dr.stage2": 12, "deepmt_dr_noisr.stage2": 36},
    },
    "paper": {},
}
PROFILES = tuple(PROFILE_OVERRIDES)


def _set_dotted(obj: Any, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for i, p in enumerate(parts[:-1]):
        if p not in field_types(obj) or not dataclasses.is_dataclass(getattr(obj, p)):
            raise SettingError(f"unknown config section {p!r} in {dotted!r}{did_you_mean(p, obj, parts[:i])}")
        obj = getattr(obj, p)
    last = parts[-1]
    hints = field_types(obj)
    if last not in hints:
        raise SettingError(f"unknown config field {dotted!r}{did_you_mean(last, obj, parts[:-1])}")
    section = getattr(obj, last)
    if dataclasses.is_dataclass(section):
        example = f"{dotted}.{dataclasses.fields(section)[0].name}"
        raise SettingError(f"{dotted!r} is a section, not a setting; set one of its fields, e.g. {example}")
    setattr(obj, last, check_setting(dotted, value, hints[last]))


# --------------------------------------------------------------------------- validation
DATASETS = ("synthetic", "idrid", "idrid-seg", "ddr", "ddr-seg", "messidor1", "messidor2", "aptos", "eyepacs")
_UNIT = Allowed(lo=0, hi=1)
_POSITIVE = Allowed(lo=0, lo_open=True)
_AT_LEAST_1 = Allowed(lo=1)

#: Ranges and choices of the settings whose type alone does not say what is allowed. A number not listed
#: here must be >= 0 (``Allowed()``); a string not listed may be anything (its module checks it).
ALLOWED: dict[str, Allowed] = {
    "profile": Allowed(choices=PROFILES),
    "data.dataset": Allowed(choices=DATASETS),
    "data.hr_size": Allowed(lo=8),
    "data.scale": Allowed(choices=(2, 4, 8)),
    "data.crop_size": _AT_LEAST_1,
    "data.nongrading_crop_size": _AT_LEAST_1,
    "data.n_train": _AT_LEAST_1,
    "data.n_val": _AT_LEAST_1,
    "data.n_test": _AT_LEAST_1,
    "data.val_fraction": Allowed(lo=0, hi=1, hi_open=True),
    "data.mask_fraction": _UNIT,
    "data.label_fraction": Allowed(lo=0, hi=1, lo_open=True),
    "data.synth.nv_decoy_prob": _UNIT,
    "data.degradation.jpeg_quality": Allowed(lo=1, hi=100),
    "model.isr.channels": _AT_LEAST_1,
    "model.isr.upsampler": Allowed(choices=("transposed", "pixelshuffle")),
    "model.seg.base_channels": _AT_LEAST_1,
    "model.seg.levels": Allowed(lo=2),  # the U-Net needs one level down; the upper bound comes from the input size
    "model.grader.width": _AT_LEAST_1,
    "model.grader.spp_levels": _AT_LEAST_1,
    "model.grader.fc_hidden": _AT_LEAST_1,
    "model.grader.dropout": Allowed(lo=0, hi=1, hi_open=True),
    "model.vis.stages": Allowed(lo=1, hi=4),
    "model.vis.iou_threshold": _UNIT,
    "model.vis.binarize_threshold": _UNIT,
    "loss.isr_pixel": Allowed(choices=("mse", "l1")),
    "loss.focal_alpha": _UNIT,
    "loss.class_weights": Allowed(choices=("auto", "none"), length=5),
    "loss.feedback_scaling": Allowed(choices=("authors", "calibrated")),
    "loss.stage1b_input": Allowed(choices=("hr", "sr")),
    "model.grader.spp_pool": Allowed(choices=("max", "avg")),
    "loss.seg_dice_empty": Allowed(choices=("include", "skip")),
    "train.module_selection": Allowed(choices=("per_module", "joint")),
    "loss.feedback_ratio": _POSITIVE,
    "loss.calibration_batches": _AT_LEAST_1,
    "train.device": Allowed(pattern=r"auto|cpu|cuda(:\d+)?", text="auto, cpu, cuda or cuda:N"),
    "train.precision": Allowed(choices=("auto", "fp32", "bf16", "fp16")),
    "train.batch_size": _AT_LEAST_1,
    "train.eval_batch_size": _AT_LEAST_1,
    "train.lr": _POSITIVE,
    "train.grading_batch_size": _AT_LEAST_1,
    "train.grading_learning_rate": _POSITIVE,
    "train.lr_scale": _POSITIVE,
    "train.epochs_scale": _POSITIVE,
    "train.lr_stage2_factor": _POSITIVE,
    "train.log_every": _AT_LEAST_1,
    "train.val_every": _AT_LEAST_1,
    # a baseline trained 0 epochs would be written as final.pt untrained. A stage of a method trained by stage may
    # have 0 (that stage is skipped: ablations, warm starts), but not all of them (deepmt.engine.resources)
    "train.epochs_single": _AT_LEAST_1,
    "train.epochs_stage1a": Allowed(lo=0),
    "train.epochs_stage1b": Allowed(lo=0),
    "train.epochs_stage2": Allowed(lo=0),
    "train.epochs_by_method": _AT_LEAST_1,  # each method's epochs (the names are checked by deepmt.models.methods)
    "train.stage2_max_psnr_drop": Allowed(lo=None),  # negative: stage 2 must gain PSNR
}


def check_setting(key: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to the field's ``annotation`` and checked against ``ALLOWED[key]``.

    Strings are parsed (``"1e-3"`` -> 0.001, ``"none"`` -> None where allowed, ``"true"`` -> True,
    ``"[1,2,4]"`` or ``"1,2,4"`` -> a tuple); ints are accepted for floats. Raises :class:`SettingError`
    (``key=value: expected ...``) for anything the field does not allow.
    """
    return convert(key, value, annotation, ALLOWED.get(key, Allowed()))


def check_sizes(cfg: "Config") -> None:
    """A :class:`SettingError` unless the image sizes fit together: ``data.hr_size`` a multiple of ``data.scale``
    (the LR image is ``hr_size / scale`` px), and each training crop (``data.crop_size``,
    ``data.nongrading_crop_size``) a multiple of ``data.scale`` no larger than ``data.hr_size``. Settings are checked
    one by one as they are set; this checks them together, before a command builds anything."""
    d = cfg.data
    if d.hr_size % d.scale:
        raise SettingError(f"data.hr_size={d.hr_size}: expected a multiple of data.scale={d.scale} "
                           f"(the LR image is data.hr_size / data.scale px)")
    for key in ("crop_size", "nongrading_crop_size"):
        crop = getattr(d, key, None)
        if crop is not None and (crop % d.scale or crop > d.hr_size):
            raise SettingError(f"data.{key}={crop}: expected a multiple of data.scale={d.scale} "
                               f"no larger than data.hr_size={d.hr_size}, or none")


def default_profile() -> str:
    """The profile named by ``DEEPMT_PROFILE`` (``quick`` when unset)."""
    name = os.environ.get("DEEPMT_PROFILE", "quick").strip() or "quick"
    if name not in PROFILES:
        raise SettingError(f"DEEPMT_PROFILE={name!r} is not a profile; choose one of {PROFILES}")
    return name


def get_config(profile: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the config of a named profile, then apply dotted ``overrides``."""
    profile = profile or default_profile()
    if profile not in PROFILES:
        raise SettingError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    cfg = Config(profile=profile).replace(PROFILE_OVERRIDES[profile])
    return cfg.replace(overrides) if overrides else cfg


def method_config(cfg: Config, method_name: str) -> Config:
    """The config ``method_name`` trains under and is cached by. In ``train.epochs_by_method``, an entry
    ``method_name`` replaces ``train.epochs_single`` (a baseline) and an entry ``method_name.STAGE`` replaces
    ``train.epochs_STAGE`` (a method trained by stage, e.g. ``deepmt_dr.stage1b``); the mapping itself is
    dropped (it is then at its key-neutral empty value). So a method's cache key depends on its own epochs
    only: giving one method more epochs retrains that method and no other, and a resolved config is the one
    ``--set train.epochs_single=N`` (or ``train.epochs_stage1b=N``) would give. Returns ``cfg`` itself when
    the mapping is empty. The cache, the runner and the command line call it through
    :func:`deepmt.experiment_cache.resolve_config`, which first checks the mapping's names against the method
    registry; :mod:`deepmt.grid_log` (below the cache) calls it directly."""
    mapping = cfg.train.epochs_by_method
    if not mapping:
        return cfg
    out = cfg.replace({"train.epochs_by_method": {}})
    for name, epochs in mapping.items():
        method, _, stage = name.partition(".")
        if method == method_name:
            field_name = f"epochs_{stage}" if stage else "epochs_single"
            if field_name not in field_types(out.train):
                raise SettingError(f"train.epochs_by_method: {name!r}: no stage {stage!r} (a stage has train.epochs_STAGE)")
            setattr(out.train, field_name, int(epochs))
    return out


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Inverse of :meth:`Config.to_dict` (used when loading checkpoints and caches).

    A field missing from ``d`` (a config stored before the field existed) takes the value the code used
    when it was stored: its entry in :data:`STORED_DEFAULTS` if it has one, else the dataclass default.
    """

    def build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
        kwargs = {}
        for f in dataclasses.fields(cls):
            dotted = prefix + f.name
            ftype = f.type if not isinstance(f.type, str) else _TYPES.get(f.name)
            if ftype is not None and dataclasses.is_dataclass(ftype):
                kwargs[f.name] = build(ftype, values.get(f.name, {}), dotted + ".")
            elif f.name in values:
                v = values[f.name]
                kwargs[f.name] = tuple(v) if isinstance(v, list) else v
            elif dotted in STORED_DEFAULTS:
                kwargs[f.name] = STORED_DEFAULTS[dotted]
        return cls(**kwargs)

    return build(Config, d, "")


_TYPES: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "train": TrainConfig,
    "synth": SynthConfig,
    "degradation": DegradationConfig,
    "isr": ISRConfig,
    "seg": SegConfig,
    "grader": GraderConfig,
    "vis": VisConfig,
}
