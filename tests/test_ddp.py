"""Data-parallel training: 2 CPU processes with Gloo; the rank-0 checkpoint loads in a single process."""

import json
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dummy_method import DummyMethod, ddp_worker, dummy_datasets, tiny_cfg

from deepmt.engine.checkpoint import load_checkpoint
from deepmt.engine.evaluate import evaluate
from deepmt.utils import seed_everything



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_two_gloo_processes_train_and_rank0_checkpoint_loads(tmp_path):
    cfg = tiny_cfg(**{"train.epochs_stage1a": 1, "train.epochs_stage1b": 1, "train.device": "cpu"})
    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path), json.dumps(cfg.to_dict())), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    np.testing.assert_equal((r0["val"], r0["test"]), (r1["val"], r1["test"]))  # metrics broadcast from rank 0
    assert r0["rows"] == 2
    # the ranks trained on disjoint halves of the training set (one epoch per stage: one sampler partition), yet
    # end with the same weights, away from the shared initial ones: each step applied the all-reduced gradient
    assert r0["seen"] and r1["seen"] and not set(r0["seen"]) & set(r1["seen"])
    assert sorted(r0["seen"] + r1["seen"]) == list(range(len(dummy_datasets()["train"])))
    p0, p1 = torch.load(tmp_path / "rank0-params.pt"), torch.load(tmp_path / "rank1-params.pt")
    seed_everything(cfg.train.seed)
    init = dict(DummyMethod().named_parameters())
    assert p0.keys() == p1.keys() == init.keys()
    assert all(torch.equal(p0[n], p1[n]) for n in p0)
    assert all(not torch.equal(p0[n], init[n]) for n in p0), "every parameter was trained"
    ckpt = load_checkpoint(tmp_path / "final.pt")
    last = load_checkpoint(tmp_path / "last.pt")
    assert len(last["rng"]) == 2  # per-rank RNG states for exact resume
    m = DummyMethod()
    m.load_state_dict(ckpt["model"])  # plain (unwrapped) state dict
    metrics, _ = evaluate(m, dummy_datasets()["test"], cfg)
    assert metrics["qwk"] == pytest.approx(r0["test"]["qwk"]) and metrics["psnr"] == pytest.approx(r0["test"]["psnr"], rel=1e-4)
