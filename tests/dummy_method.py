"""Test helpers for the engine: a tiny two-stage Method that follows docs/CONTRACTS.md, and a tiny
in-memory dataset of random Sample dicts.

``DummyMethod``: conv ISR (LR -> SR), a 1-layer lesion head on SR, and a small grader on SR + lesion
probabilities (with BatchNorm and dropout, so frozen-BN handling and RNG restoring are exercised).
Stages: ``("isr_seg", "grade")``.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepmt.models import MethodOutput


class DummyMethod(nn.Module):
    name = "dummy"
    tasks = frozenset({"isr", "seg", "grade"})
    stages = ("isr_seg", "grade")

    def __init__(self, scale: int = 4, nan_at_call: int | None = None, nan_term: str = "pixel", keep_start: bool = False,
                 never_better: bool = False):
        super().__init__()
        self.scale = scale
        self.isr = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(8, 3, 3, padding=1))
        self.seg = nn.Conv2d(3, 4, 3, padding=1)
        self.grader = nn.Sequential(
            nn.Conv2d(7, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 5),
        )
        self.nan_at_call, self.nan_term, self.calls = nan_at_call, nan_term, 0
        #: the grade stage's starting weights compete for selection; with never_better no epoch may beat them
        self.keep_start, self.never_better = keep_start, never_better

    # -- contract
    def stage_parameters(self, stage):
        return list(self.isr.parameters()) + list(self.seg.parameters()) if stage == "isr_seg" else list(self.grader.parameters())

    def stage_epochs(self, stage, train_cfg):
        return train_cfg.epochs_stage1a if stage == "isr_seg" else train_cfg.epochs_stage1b

    def stage_lr(self, stage, train_cfg):
        grading = stage == "grade" and train_cfg.grading_learning_rate is not None
        return train_cfg.grading_learning_rate if grading else train_cfg.lr

    def stage_batch_size(self, stage, train_cfg):
        grader = stage == "grade" and train_cfg.grading_batch_size is not None
        return train_cfg.grading_batch_size if grader else train_cfg.batch_size

    def stage_trains_grader_only(self, stage):
        return stage == "grade"

    def selection_metric(self, stage):
        return "psnr" if stage == "isr_seg" else "qwk"

    def stage_uses_unlabelled(self, stage):
        return stage == "isr_seg"

    def stage_grades(self, stage):
        return stage == "grade"

    def keeps_start_candidate(self, stage):
        return self.keep_start and stage == "grade"

    def kept_across_selection(self):
        return ()

    def selection_score(self, stage, val, start_val=None):
        if self.never_better and start_val is not None and val is not start_val:
            return float("-inf")
        return float(val[self.selection_metric(stage)])

    def _sr(self, lr):
        up = F.interpolate(lr, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return (up + self.isr(up)).clamp(0, 1)

    def forward(self, batch):
        sr = self._sr(batch["lr"])
        logits = self.seg(sr)
        probs = torch.sigmoid(logits)
        return MethodOutput(sr=sr, lesion_logits=logits, lesion_probs=probs, grade_logits=self.grader(torch.cat([sr, probs], 1)))

    def training_loss(self, batch, stage):
        self.calls += 1
        out = self.forward(batch)
        if stage == "isr_seg":
            present = batch["mask_present"].float()[:, :, None, None]
            bce = F.binary_cross_entropy_with_logits(out.lesion_logits.float(), batch["masks"], reduction="none")
            terms = {"pixel": F.mse_loss(out.sr.float(), batch["hr"]), "seg": (bce * present).mean()}
        else:
            terms = {"ce": F.cross_entropy(out.grade_logits.float(), batch["grade"], ignore_index=-1)}
        if self.nan_at_call is not None and self.calls >= self.nan_at_call and self.nan_term in terms:
            terms[self.nan_term] = terms[self.nan_term] * float("nan")
        return sum(terms.values()), terms


class RandomFundus(torch.utils.data.Dataset):
    """``n`` deterministic random samples (HR ``hr`` px); grade = how many lesion types are present.

    ``augment`` flips with the torch global RNG (exercises RNG restoring); ``delay`` seconds per item
    slows a subprocess run down so that it can be killed mid-epoch.
    """

    def __init__(self, n: int = 16, hr: int = 16, scale: int = 4, seed: int = 0, augment: bool = False, delay: float = 0.0):
        g = torch.Generator().manual_seed(seed)
        self.hr = torch.rand(n, 3, hr, hr, generator=g)
        self.masks = (torch.rand(n, 4, hr, hr, generator=g) > 0.9).float()
        self.present = torch.rand(n, 4, generator=g) > 0.3
        self.masks *= self.present[:, :, None, None]
        self.hr[:, 0] = (self.hr[:, 0] + self.masks.sum(1) * 0.3).clamp(0, 1)
        self.grades = [min(4, int(p.sum())) for p in self.present]
        self.scale, self.augment, self.delay = scale, augment, delay

    def __len__(self):
        return len(self.hr)

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        hr, masks = self.hr[i], self.masks[i]
        if self.augment and torch.rand(()) < 0.5:
            hr, masks = hr.flip(-1), masks.flip(-1)
        lr = F.interpolate(hr[None], scale_factor=1 / self.scale, mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)
        return {
            "hr": hr, "lr": lr, "masks": masks, "mask_present": self.present[i].clone(),
            "fov": torch.ones(1, *hr.shape[1:]), "grade": torch.tensor(self.grades[i], dtype=torch.int64), "id": f"img{i:03d}",
        }


def dummy_datasets(n_train=16, n_val=8, n_test=8, hr=16, delay=0.0):
    return {
        "train": RandomFundus(n_train, hr, seed=1, augment=True, delay=delay),
        "val": RandomFundus(n_val, hr, seed=2),
        "test": RandomFundus(n_test, hr, seed=3),
    }


def tiny_cfg(**overrides):
    from deepmt.config import get_config

    base = {"train.epochs_stage1a": 2, "train.epochs_stage1b": 2, "train.batch_size": 4, "train.eval_batch_size": 8,
            "train.progress": False, "train.lr": 1e-2, "data.hr_size": 16}
    base.update(overrides)
    return get_config("smoke", base)


# ----------------------------------------------------------------------------- subprocess / DDP entry points
def train_main(run_dir: str, resume: bool, delay: float, cfg_json: str) -> None:
    """Entry point of the kill-and-resume test's subprocess."""
    from deepmt.config import config_from_dict
    from deepmt.engine.trainer import train
    from deepmt.utils import seed_everything
    import json

    cfg = config_from_dict(json.loads(cfg_json))
    seed_everything(cfg.train.seed)
    train(DummyMethod(), cfg, dummy_datasets(delay=delay), run_dir, resume=resume)


class _Seen(torch.utils.data.Dataset):
    """``dataset`` that records the indices it is asked for (which training images a DDP rank saw)."""

    def __init__(self, dataset, seen: set):
        self.dataset, self.seen = dataset, seen

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        self.seen.add(int(i))
        return self.dataset[i]

    def __getattr__(self, name):
        return getattr(self.dataset, name)


def ddp_worker(rank: int, world: int, port: int, run_dir: str, cfg_json: str) -> None:
    """One rank of the 2-process Gloo test (spawned by torch.multiprocessing)."""
    import json

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from deepmt.config import config_from_dict
    from deepmt.engine import ddp
    from deepmt.engine.trainer import train
    from deepmt.utils import seed_everything

    cfg = config_from_dict(json.loads(cfg_json))
    seed_everything(cfg.train.seed)
    method, data, seen = DummyMethod(), dummy_datasets(), set()
    train_set = data["train"]
    data["train"] = _Seen(train_set, seen)
    res = train(method, cfg, data, run_dir)
    with open(os.path.join(run_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"val": res.val_metrics, "test": res.test_metrics, "rows": len(res.history), "seen": sorted(seen)}, f)
    # this rank's own weights (not the rank-0 checkpoint): equal across ranks only if the gradients were all-reduced
    torch.save({n: p.detach().clone() for n, p in method.named_parameters()}, os.path.join(run_dir, f"rank{rank}-params.pt"))
    ddp.cleanup(ddp.current())


if __name__ == "__main__":  # python tests/dummy_method.py RUN_DIR RESUME DELAY CFG_JSON
    train_main(sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), sys.argv[4])
