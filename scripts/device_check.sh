#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one short call (docs/PERFORMANCE.md, "GPU"):
#   1. the bench of the paper profile at 1024 px with torch's deterministic algorithms on (the default) and off
#      (`--set train.deterministic=false`), plus the quick profile;
#   2. torch.profiler's top kernels of a paper stage-2 step without deterministic algorithms;
#   3. paper stage 2 at batch 8 (does a fuller GPU raise the share of the peak?);
#   4. the CUDA training path end to end (smoke profile, bf16 autocast) twice with the same seed: are the runs
#      identical with deterministic algorithms on?
#   5. paper stages 2 and 1a with the ISR and segmentation subnets compiled (`bench --compile`), deterministic
#      algorithms off.
# Usage: OUT=folder bash scripts/device_check.sh [STEP ...]   (default folder: results/bench; default steps: all,
# e.g. `1b 4` for two of them). Each step has its own time limit, so one that hangs leaves the others' files.
set -uo pipefail
OUT=${OUT:-results/bench}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 DEEPMT_CACHE=${DEEPMT_CACHE:-/tmp/deepmt-device-cache}
PY=${PYTHON:-python3}
log() { echo "[device_check $(date -u +%H:%M:%S)] $*"; }
STEPS=" ${*:-1a 1b 2 3 4 5} "
want() { [[ "$STEPS" == *" $1 "* ]]; }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"

if want 1a; then
log "1a. bench, paper profile, deterministic algorithms off"
timeout 200 $PY -m deepmt bench --profiles paper --budget-seconds 90 --no-runner --set train.deterministic=false \
    --out "$OUT" > /dev/null || log "1a failed ($?)"
fi
if want 1b; then
log "1b. bench, quick and paper profiles, defaults (deterministic algorithms on)"
timeout 260 $PY -m deepmt bench --profiles quick paper --budget-seconds 130 --no-runner --out "$OUT" > /dev/null \
    || log "1b failed ($?)"

fi
if want 2; then
log "2. profiler, paper stage 2, deterministic algorithms off"
timeout 90 $PY -m deepmt bench --profile-ops paper:stage2 --set train.deterministic=false \
    > "$OUT/profile_gpu_paper_stage2_nondeterministic.txt" || log "2 failed ($?)"

fi
if want 3; then
log "3. paper stage 2 at batch 4 and 8, deterministic algorithms off"
timeout 90 $PY - <<'EOF' || log "3 failed ($?)"
import torch
from deepmt.bench import bench_config, count_gflops, make_train_step, summarize, time_repeated
from deepmt.bench.steps import mode_backends
dev = torch.device("cuda")
cfg = bench_config("paper", dev, {"train.deterministic": "false"})
gf = count_gflops(cfg, 1024, stages=("stage2",))["train_stage2"]
peak = None
for bs in (4, 8):
    with mode_backends("fast", dev):
        step, prec = make_train_step(cfg, "stage2", "fast", dev, bs, 1024)
        s = summarize(time_repeated(step, dev, 12.0, warmup=1, min_repeats=3, cheap_s=1.0))
    ips = bs / s["median"]
    print(f"paper stage2 batch {bs} ({prec.name}): {ips:.2f} img/s, {ips * gf / 1e3:.0f} TFLOP/s, "
          f"max memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    del step
    torch.cuda.empty_cache()
EOF

fi
if want 4; then
log "4. CUDA training path, smoke profile, twice with seed 0"
for i in 1 2; do
    timeout 120 $PY -m deepmt train --profile smoke --method deepmt_dr --device cuda --run-dir "/tmp/deepmt-cuda-run$i" \
        --set train.progress=false > "/tmp/deepmt-cuda-run$i.log" 2>&1 || { log "4 run $i failed ($?)"; tail -5 "/tmp/deepmt-cuda-run$i.log"; }
done
timeout 60 $PY - <<'EOF' || log "4 compare failed ($?)"
import torch
a, b = (torch.load(f"/tmp/deepmt-cuda-run{i}/final.pt", map_location="cpu", weights_only=False) for i in (1, 2))
sa, sb = (x["model"] if isinstance(x, dict) and "model" in x else x for x in (a, b))
diff = [k for k in sa if torch.is_tensor(sa[k]) and not torch.equal(sa[k], sb[k])]
print(f"CUDA smoke deepmt_dr, two runs with seed 0 and deterministic algorithms on: {len(sa)} tensors, "
      f"{len(diff)} differ" + (f" (first: {diff[:3]}, max |diff| "
      f"{max((sa[k].float() - sb[k].float()).abs().max().item() for k in diff):.3g})" if diff else " (bit-identical)"))
EOF
grep -h -i "warn.*determinis" /tmp/deepmt-cuda-run1.log | sort -u | head -5
fi
if want 5; then
log "5. paper stages 2 and 1a, ISR and segmentation compiled, deterministic algorithms off"
timeout 170 $PY - <<'EOF' || log "5 failed ($?)"
import time
import torch
from deepmt.bench import bench_config, count_gflops, make_train_step, summarize, time_repeated
from deepmt.bench.steps import mode_backends
dev = torch.device("cuda")
cfg = bench_config("paper", dev, {"train.deterministic": "false"})
flops = count_gflops(cfg, 1024, stages=("stage2", "stage1a"))
peak = 667384.0  # GFLOP/s, the bf16 matmul median of the H200 bench (results/bench/bench_nvidia-h200.json)
for stage in ("stage2", "stage1a"):
    with mode_backends("fast", dev):
        t0 = time.perf_counter()
        step, prec = make_train_step(cfg, stage, "fast", dev, 4, 1024, compile=True)
        step()
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        s = summarize(time_repeated(step, dev, 10.0, warmup=1, min_repeats=3, cheap_s=1.0))
    ips = 4 / s["median"]
    print(f"paper {stage} batch 4 compiled ({prec.name}): {ips:.2f} img/s, "
          f"{ips * flops['train_' + stage] / peak:.1%} of the bf16 peak; first step with compilation {first:.0f} s")
    del step
EOF
fi
log "done"
ls -la "$OUT"
