"""Subprocess entry point of the cache-lock tests (tests/test_worker_pool.py).

    python tests/race_worker.py train OUT_JSON MARKER_DIR GO_FILE DELAY CFG_JSON
    python tests/race_worker.py hold  OUT_JSON MARKER_DIR GO_FILE DELAY CFG_JSON

Both import everything, write ``MARKER_DIR/ready-<pid>`` and wait for ``GO_FILE`` (so the test decides who
starts when, not the import times). ``train`` then runs ``run_experiment("dummy", cfg)`` on the tiny dummy
data (``DELAY`` seconds per training sample); the builder, called only by the process that trains (under the
entry's lock), writes ``MARKER_DIR/built-<pid>``; the result goes to ``OUT_JSON``. ``hold`` takes the entry's
lock, writes ``MARKER_DIR/holding-<pid>`` and sleeps (until it is killed).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dummy_method import DummyMethod, dummy_datasets  # noqa: E402

from deepmt.config import config_from_dict  # noqa: E402
from deepmt.experiment_cache import entry_lock, run_dir_for, run_experiment  # noqa: E402


def main(mode: str, out: str, marker_dir: str, go_file: str, delay: str, cfg_json: str) -> None:
    marker, pid = Path(marker_dir), os.getpid()
    cfg = config_from_dict(json.loads(cfg_json))
    (marker / f"ready-{pid}").touch()
    while not Path(go_file).exists():
        time.sleep(0.01)
    if mode == "hold":
        with entry_lock(run_dir_for("dummy", cfg)):
            (marker / f"holding-{pid}").touch()
            time.sleep(600)
        return

    def builder(name, cfg, class_counts):
        (marker / f"built-{pid}").touch()
        return DummyMethod()

    res = run_experiment("dummy", cfg, datasets=dummy_datasets(delay=float(delay)), builder=builder)
    Path(out).write_text(json.dumps({"pid": pid, "from_cache": res.from_cache, "metrics": res.metrics,
                                     "probs": res.predictions["grade_probs"].tolist()}))


if __name__ == "__main__":
    main(*sys.argv[1:7])
