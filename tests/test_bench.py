"""The benchmark runs end to end and writes well-formed results (never asserts timings)."""

import json
import sys
from pathlib import Path

import pytest

from conftest import write_video

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.pipeline import main  # noqa: E402
from bench.pipeline_measure import STAGES  # noqa: E402
from bench.pipeline_report import markdown  # noqa: E402


def _check_stats(s: dict) -> None:
    assert set(s) >= {"median", "p95", "mean", "n"}
    assert s["n"] > 0 and s["median"] >= 0 and s["p95"] >= s["median"] * 0.999


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("bench") / "tiny.mp4", faces=1, frames=8)


def test_quick_run_writes_results(tmp_path, tiny_video):
    out = tmp_path / "out"
    rc = main(["--quick", "--video", str(tiny_video), "--models", "baseline_cnn", "--sizes", "48",
               "--frames", "3", "--max-seconds", "0.5", "--device", "cpu", "--out-dir", str(out)])
    assert rc == 0
    results = json.loads((out / "results_cpu.json").read_text(encoding="utf-8"))
    assert results["device"] == "cpu" and results["mode"] == "quick"
    machine = results["machine"]
    assert machine["cpu"] and machine["logical_cores"] >= 1 and machine["torch"]
    assert machine["torch_threads"] >= 1
    from fer_desktop.weights import find_weights, read_card

    shipped = find_weights("baseline_cnn")
    trained = shipped is not None and read_card(shipped)["input_size"] == 48
    assert results["weights_note"].startswith("trained" if trained else "untrained")

    (detectors,) = results["detectors"].values()
    for name in ("mediapipe", "haar"):
        _check_stats(detectors[name]["ms"])
    assert detectors["mediapipe"]["faces_mean"] >= 1  # the face of the video is found

    (row,) = results["pipeline"]
    assert row["model"] == "baseline_cnn" and row["input_size"] == 48
    assert row["weights"] == ("trained" if trained else "untrained")
    for stage in STAGES:
        _check_stats(row[stage])
    assert row["fps"] > 0 and row["faces_per_frame"] >= 1

    (inf,) = results["inference"]
    _check_stats(inf["batch1"])
    _check_stats(inf["batch8"])
    assert {r["threads"] for r in results["threads"]} >= {1}
    ks = [r["detect_every"] for r in results["tracking"]["tiny.mp4"]]
    assert ks == [1, 2, 3, 5]
    assert results["tracking"]["tiny.mp4"][0]["box_shift_px_max"] == 0  # k=1 is the reference itself

    md = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert md == markdown([results])
    for heading in ("Face detection", "The whole pipeline", "Inference alone", "Detection skipping"):
        assert heading in md


def test_soak_reports_memory(tmp_path, tiny_video):
    out = tmp_path / "out"
    assert main(["--soak", "20", "--video", str(tiny_video), "--models", "baseline_cnn", "--sizes", "48",
                 "--device", "cpu", "--out-dir", str(out)]) == 0
    results = json.loads((out / "results_cpu.json").read_text(encoding="utf-8"))
    soak = results["soak"]
    assert soak["frames"] == 20 and soak["model"] == "baseline_cnn"
    assert soak["rss_after_warmup_mb"] > 0 and soak["rss_end_mb"] > 0
    assert soak["growth_mb"] == pytest.approx(soak["rss_end_mb"] - soak["rss_after_warmup_mb"], abs=0.2)
    assert "Soak" in (out / "RESULTS.md").read_text(encoding="utf-8")
