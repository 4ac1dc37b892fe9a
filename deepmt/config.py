"""One config system for deepmt: nested dataclasses and three named profiles.

* ``smoke``  – CI: every code path in seconds on a CPU. Its numbers are not results.
* ``quick``  – a 2-core CPU in minutes; the default of ``./run_all.sh``.
* ``paper``  – a GPU at the authors' sizes (HR 1024, LR 256, ISR 32 ch x 5 blocks,
  U-Net base 64 with 5 levels, full-width ResNet-18).

Use :func:`get_config` to build one, optionally with dotted overrides::

    cfg = get_config("quick", {"train.seed": 1, "data.scale": 8})

The profile defaults to the ``DEEPMT_PROFILE`` environment variable (``quick`` if unset),
so CI can run every notebook under ``smoke`` without editing it.

Each sub-config is owned by one part of the package (data, models, losses, engine); the
docstrings say which paper setting each field reproduces.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

PROFILES = ("smoke", "quick", "paper")


# --------------------------------------------------------------------------- data
@dataclass
class SynthConfig:
    """Dials of the synthetic fundus benchmark (see ``deepmt.data.synthetic``).

    The defaults follow the pilot's variant "C" (``../shared/PILOT.md``): microaneurysms so
    small that they nearly vanish after x4 bicubic downsampling, and MA-coloured smudge
    distractors whose LR peak is matched to an MA's (``smudge_match``), so that at LR the
    two are hard to tell apart while at HR they separate clearly.
    """

    class_prior: str = "balanced"  # "balanced" or "ddr" (DDR-like imbalance)
    background: str = "procedural"  # "procedural" or "retina" (composited on skimage.data.retina())
    ma_sigma: tuple[float, float] = (0.8, 1.1)  # HR px at 256-px reference size
    ma_contrast: tuple[float, float] = (0.6, 0.85)
    smudge_match: float = 1.0  # 1.0: smudge LR peak == MA LR peak; 0: no smudges; >1: smudges brighter at LR
    nv_match: float = 1.0  # decoy NV tufts, LR peak = nv_match x a real tuft's (1/True: matched; 0/False: no decoys)
    size_reference: int = 256  # lesion sizes are given in px at this HR size and scaled with hr_size
    ma_count: tuple[int, int] = (8, 15)  # MA per image in grades 1-2 (grades 3-4: +2..+5 more)
    dot_total: tuple[int, int] = (15, 27)  # MA + smudges per image in every grade (count matching)
    smudge_sigma: tuple[float, float] = (1.6, 2.0)  # HR px at size_reference
    severe_he_per_quadrant: int = 3  # grade 3 rule: at least this many haemorrhages in each of the 4 quadrants
    nv_decoy_prob: float = 0.5  # probability of a decoy NV tuft in an image (every grade), when nv_match > 0


@dataclass
class DegradationConfig:
    """HR -> LR degradation (``deepmt.data.degradation.degrade``). Paper: bicubic x4."""

    blur_sigma: float = 0.0  # extra Gaussian blur (HR px) before downsampling
    noise_std: float = 0.0  # additive Gaussian noise on the LR image, [0, 1] units
    jpeg_quality: int | None = None  # JPEG-compress the LR image at this quality


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # synthetic | idrid | idrid-seg | ddr | ddr-seg | messidor1 | messidor2 | aptos | eyepacs
    root: str | None = None  # dataset root for real datasets (None for synthetic)
    hr_size: int = 128  # HR side in px (paper: 1024)
    scale: int = 4  # HR/LR ratio: 2, 4 or 8 (paper: 4)
    crop_size: int | None = None  # HR random-crop size for training (paper: 256); None = whole image
    n_train: int = 1200  # synthetic only
    n_val: int = 200
    n_test: int = 400
    val_fraction: float = 0.15  # stratified validation split for real datasets without one
    seed: int = 0  # data seed (synthetic generation and split), independent of the training seed
    augment: bool = True  # joint image+mask flips/rotations for training
    num_workers: int = 0
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
    """

    isr_pixel: str = "mse"  # "mse" or "l1"
    tv: float = 1e-6
    seg_dice: float = 1.0
    seg_focal: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    seg_aware: float = 1.0  # segmentation-aware term
    cls_aware: float = 10.0  # classification-aware term
    grading_feedback: float = 1.0  # grading loss fed back into ISR
    vis_consistency: float = 0.3  # visualization map vs lesion map
    unsupervised: float = 0.0  # journal extension: pseudo masks from the binarised visualization map
    class_weights: str | tuple[float, ...] = "auto"  # "auto" (inverse training frequency), "none", or 5 weights
    seg_weight_in_joint: float = 1.0  # weight of the supervised segmentation loss in stage 2
    seg_deep: float = 1.0  # deep supervision: weight of the side outputs' mean (Dice + focal) loss
    seg_on_hr: bool = True  # stage 1a also trains segmentation on HR images (stage 1b grades [HR, seg(HR)])


# --------------------------------------------------------------------------- engine
@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where supported, fp16+scaler on old GPUs) | fp32 | bf16 | fp16
    channels_last: bool = True
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    epochs_stage1a: int = 8  # ISR + segmentation on the segmentation set
    epochs_stage1b: int = 8  # grading + fusion on HR images, segmentation frozen
    epochs_stage2: int = 4  # joint fine-tuning with the task-aware loss
    epochs_single: int = 12  # single-task and two-stage baselines (per trained part)
    lr_stage2_factor: float = 0.1  # stage 2 learning rate = lr * this (paper fine-tunes with a small lr)
    grad_clip: float | None = 5.0
    selection_metric: str = "qwk"  # validation metric for model selection (grading); psnr / dice for other tasks
    log_every: int = 10
    progress: bool = True
    # torch CPU threads of a run (trainer: torch.set_num_threads; the runner's workers also set OMP_NUM_THREADS).
    # Part of the run's key because CPU results depend on it; 0 = torch's default (all cores: machine-dependent).
    threads: int = 1


@dataclass
class Config:
    profile: str = "quick"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ----------------------------------------------------------------- helpers
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self, *extra: Any) -> str:
        """A stable short hash of the full config (plus ``extra``), for caches."""
        blob = json.dumps([self.to_dict(), [str(e) for e in extra]], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, overrides: Mapping[str, Any] | None = None, **kw: Any) -> "Config":
        """A copy with dotted overrides applied (``{"train.seed": 1}`` or ``train__seed=1``)."""
        new = copy.deepcopy(self)
        items = dict(overrides or {})
        items.update({k.replace("__", "."): v for k, v in kw.items()})
        for dotted, value in items.items():
            _set_dotted(new, dotted, value)
        return new


def _set_dotted(obj: Any, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        if not hasattr(obj, p):
            raise KeyError(f"unknown config section {p!r} in {dotted!r}")
        obj = getattr(obj, p)
    last = parts[-1]
    if not dataclasses.is_dataclass(obj) or last not in {f.name for f in dataclasses.fields(obj)}:
        raise KeyError(f"unknown config field {dotted!r}")
    current = getattr(obj, last)
    if isinstance(value, str) and not isinstance(current, str) and current is not None:
        value = _parse_literal(value)
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    setattr(obj, last, value)


def _parse_literal(text: str) -> Any:
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def default_profile() -> str:
    """The profile named by ``DEEPMT_PROFILE`` (``quick`` when unset)."""
    name = os.environ.get("DEEPMT_PROFILE", "quick").strip() or "quick"
    if name not in PROFILES:
        raise ValueError(f"DEEPMT_PROFILE={name!r} is not a profile; choose one of {PROFILES}")
    return name


def get_config(profile: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the config of a named profile, then apply dotted ``overrides``."""
    profile = profile or default_profile()
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    cfg = Config(profile=profile)
    if profile == "smoke":
        cfg = cfg.replace(
            {
                "data.hr_size": 64,
                "data.n_train": 16,
                "data.n_val": 8,
                "data.n_test": 8,
                "model.isr.channels": 8,
                "model.isr.n_resblocks": 1,
                "model.seg.base_channels": 8,
                "model.seg.levels": 3,
                "model.grader.width": 8,
                "model.grader.fc_hidden": 32,
                "train.batch_size": 8,
                "train.eval_batch_size": 8,
                "train.epochs_stage1a": 1,
                "train.epochs_stage1b": 1,
                "train.epochs_stage2": 1,
                "train.epochs_single": 1,
                "train.progress": False,
            }
        )
    elif profile == "quick":
        cfg = cfg.replace(
            {
                # sized for a 2-core CPU: every notebook together took 37.5 min from an empty cache (README)
                # (measured: see README). Lesions keep the pilot's pixel sizes (size_reference = hr_size):
                # MA sigma 0.8-1.1 HR px, so they nearly vanish at LR 24 px.
                "data.hr_size": 96,
                "data.synth.size_reference": 96,
                "data.n_train": 600,
                "data.n_val": 150,
                "data.n_test": 300,
                "model.isr.channels": 16,
                "model.isr.n_resblocks": 2,
                "model.seg.base_channels": 8,
                "model.seg.levels": 3,
                "model.grader.width": 12,
                "model.grader.fc_hidden": 128,
                "train.batch_size": 8,  # many small steps: segmentation of MA needs steps more than images
                "train.epochs_stage1a": 5,
                "train.epochs_stage1b": 4,
                "train.epochs_stage2": 2,
                "train.epochs_single": 6,
            }
        )
    elif profile == "paper":
        cfg = cfg.replace(
            {
                "data.hr_size": 1024,
                "data.crop_size": 256,
                "data.n_train": 2000,
                "data.n_val": 300,
                "data.n_test": 500,
                "data.num_workers": 8,
                "train.batch_size": 8,
                "train.eval_batch_size": 4,
                "train.lr": 1e-4,
                "train.epochs_stage1a": 100,
                "train.epochs_stage1b": 100,
                "train.epochs_stage2": 50,
                "train.epochs_single": 100,
            }
        )
    return cfg.replace(overrides) if overrides else cfg


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Inverse of :meth:`Config.to_dict` (used when loading checkpoints and caches)."""

    def build(cls: type, values: Mapping[str, Any]) -> Any:
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            v = values[f.name]
            ftype = f.type if not isinstance(f.type, str) else _TYPES.get(f.name)
            if ftype is not None and dataclasses.is_dataclass(ftype):
                v = build(ftype, v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    return build(Config, d)


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
