"""The GUI benchmark runs the real app end to end and writes well-formed results (never asserts timings)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.gui import main  # noqa: E402


def _number(value) -> bool:
    return isinstance(value, (int, float)) and value >= 0


@pytest.mark.slow
def test_quick_run_writes_results(tmp_path):
    out = tmp_path / "out"
    # Two seconds a switch: room for a result of each model even on a busy machine.
    assert main(["--quick", "--seconds", "1.5", "--switch-every", "2", "--out-dir", str(out)]) == 0
    results = json.loads((out / "results_gui.json").read_text(encoding="utf-8"))
    assert results["benchmark"] == "gui" and results["mode"] == "quick"
    assert results["platform"] == "offscreen"
    assert results["machine"]["cpu"] and results["machine"]["logical_cores"] >= 1

    runs = results["runs"]
    assert [r["model"] for r in runs] == ["baseline_cnn", "attention_cnn"]
    for r in runs:
        assert r["video"] == "1 face" and r["input_size"] == 48 and r["weights"] in ("trained", "untrained")
        for key in ("main_s", "window_s", "first_frame_s", "first_result_s"):
            assert _number(r["startup"][key]), key
        # The order of the first events is not a timing: the window is up before any result.
        assert r["startup"]["window_s"] <= r["startup"]["first_result_s"]
        assert r["frames_painted"] >= 2 and r["results"] >= 1
        for key in ("display_fps", "display_ratio", "inference_fps", "faces_mean"):
            assert _number(r[key]), key
        assert set(r["frame_gap_ms"]) >= {"median", "p95", "max"}

    (switching,) = results["switching"]
    transitions = switching["transitions"]
    assert [(t["from"], t["to"]) for t in transitions] == [("baseline_cnn", "attention_cnn"),
                                                           ("attention_cnn", "baseline_cnn")]
    for t in transitions:
        assert _number(t["first_result_s"]) and _number(t["model_ready_s"])
        assert _number(t["max_frame_gap_ms"]) and t["frames_painted"] >= 1

    summary = results["summary"]
    assert set(summary["met"]) == {"window", "display", "switch_result"}
    md = (out / "RESULTS_GUI.md").read_text(encoding="utf-8")
    assert md.startswith("# GUI benchmark")
    assert "| baseline_cnn | attention_cnn |" in md


@pytest.mark.slow
def test_quick_run_with_maps_and_recording_on(tmp_path):
    out = tmp_path / "out"
    assert main(["--quick", "--models", "baseline_cnn", "--features", "explain,record", "--seconds", "1.5",
                 "--out-dir", str(out)]) == 0
    results = json.loads((out / "results_gui.json").read_text(encoding="utf-8"))
    assert [(r["model"], r["features"]) for r in results["runs"]] == [("baseline_cnn", "explain"),
                                                                     ("baseline_cnn", "record")]
    assert all(r["results"] >= 1 and _number(r["display_fps"]) for r in results["runs"])
    assert "| baseline_cnn | explain |" in (out / "RESULTS_GUI.md").read_text(encoding="utf-8")
