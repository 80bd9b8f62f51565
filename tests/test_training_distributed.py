"""Training under torchrun: two gloo processes on the CPU, spawned from here with tiny data."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_desktop.classifier import load_classifier
from training.distributed import Distributed

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def torchrun(*args, processes: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *map(str, args)]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def test_two_processes_see_disjoint_shards_and_end_with_the_single_process_weights(tmp_path):
    import ddp_worker

    torchrun(TESTS / "ddp_worker.py", tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = ddp_worker.run(Distributed(), torch.device("cpu"))

    seen = [{round(v, 3) for v in r["seen"]} for r in ranks]
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == ddp_worker.FACES // 2
    assert not seen[0] & seen[1]  # disjoint shards...
    assert seen[0] | seen[1] == {round(v, 3) for v in single["seen"]}  # ...of the same augmented batches
    for name, value in single["params"].items():
        torch.testing.assert_close(ranks[0]["params"][name], ranks[1]["params"][name], rtol=0, atol=0)
        torch.testing.assert_close(ranks[0]["params"][name], value, rtol=1e-4, atol=1e-5)
    assert ranks[0]["images"] == single["images"] == ddp_worker.FACES and ranks[0]["steps"] == single["steps"]
    assert ranks[0]["loss"] == pytest.approx(single["loss"], rel=1e-4)


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    labels = np.arange(80) % 7
    pixels = rng.integers(0, 256, (80, 48, 48)).astype(np.uint8)
    split = np.array(["train"] * 64 + ["val"] * 8 + ["test"] * 8)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, pixels=pixels, labels=labels, split=split)
    return path


def test_torchrun_trains_writes_once_and_resumes_with_another_process_count(tiny_npz, tmp_path):
    out = tmp_path / "run"
    common = ["--model", "baseline_cnn", "--data", tiny_npz, "--out", out, "--device", "cpu", "--epochs", "2",
              "--batch-size", "16", "--input-size", "32", "--quiet"]
    first = torchrun("-m", "training.train", *common, "--stop-after", "1")
    assert first.stderr.count("epoch 1/2") == 1  # rank 0 alone reports
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "last.pt"]
    assert json.loads((out / "config.json").read_text())["processes"] == 2

    # The second epoch in a single process, from the two-process checkpoint.
    proc = subprocess.run([sys.executable, "-m", "training.train", *map(str, common), "--resume"], cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming baseline_cnn after epoch 1" in proc.stderr
    card = json.loads((out / "baseline_cnn.json").read_text())
    assert card["epochs"] == 2 and card["processes"] == 1
    clf = load_classifier("baseline_cnn", device="cpu", weights_dir=out)
    assert clf.predict(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)


def test_a_global_batch_that_does_not_split_evenly_is_refused(tiny_npz, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "training.train", "--model", "baseline_cnn", "--data", str(tiny_npz), "--out",
               str(tmp_path), "--device", "cpu", "--batch-size", "15", "--quiet"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0 and "multiple of the number of processes (2)" in proc.stderr


def test_train_all_under_torchrun_gives_every_process_the_same_teacher(tiny_npz, tmp_path):
    """Rank 0 writes baseline_cnn's weights after the others have left its run: all must wait for them,
    or the ResNet trains with a teacher in one process and without in the other (DDP would average both)."""
    out = tmp_path / "all"
    proc = torchrun("-m", "training.train_all", "--data", tiny_npz, "--out", out, "--budget-s", "600",
                    "--models", "baseline_cnn", "resnet50", "--recipe", "best", "--input-size", "32",
                    "--epochs", "1", "--device", "cpu", "--no-runtime", "--quiet", timeout=480)
    # Found wherever they are: two processes' lines can interleave on the shared stderr.
    announced = re.findall(r"== resnet50: [^\n=]*?teacher: (\w+)", proc.stderr)
    assert announced == ["baseline_cnn", "baseline_cnn"], proc.stderr
    assert json.loads((out / "resnet50" / "resnet50.json").read_text())["teacher"] == "baseline_cnn"
