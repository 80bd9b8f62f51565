"""Benchmark of the real GUI: time to window, display and inference rates, model switching.

    python -m bench.gui               # full run under an Xvfb it starts: writes bench/results_gui.json
                                      # and bench/RESULTS_GUI.md
    python -m bench.gui --offscreen   # the same on Qt's offscreen platform (no X server needed)
    python -m bench.gui --quick       # a short offscreen run (two models, ~2 s each), results to a
                                      # temporary folder unless --out-dir is given
    python -m bench.gui --report      # rewrite RESULTS_GUI.md from results_gui.json

Every measurement runs ``fer-desktop`` (``python -m fer_desktop``) in a fresh
process on a generated 640x360, 30 fps video (one face, and four faces), with
the benchmark hook of ``bench/window_hooks.py`` (``$FER_DESKTOP_BENCH_EVENTS``)
logging timed events as JSON lines:

- **time to window**: from just before the process is started to the first paint
  of the window's video view (the window is on screen);
- **display and inference rates**, one process per model, video and feature
  (``--features``: labels only; explanation maps on; recording the CSV and the
  annotated video): video frames painted per second (display) and results per
  second (inference) over the run, the display rate as a fraction of the source's;
- **switching**, one process per video: the model is switched in a cycle through
  every model (baseline_cnn -> resnet50_cbam -> attention_cnn -> resnet50 ->
  baseline_cnn) while the video plays; for each switch, the longest gap between
  painted frames from just before the request until the new model's first
  result (does the video stop?), and the time from the request to that result.

Weights: trained weights (``weights/<name>.safetensors``) where they exist,
else untrained weights at the ``best`` training recipe's input size (48 px),
built by ``bench.pipeline_setup.WeightsSource``; speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, "") and str(ROOT) not in sys.path:  # python bench/gui.py
    sys.path.insert(0, str(ROOT))

from bench.gui_report import TARGETS, fmt, markdown, summary  # noqa: E402
from bench.pipeline_setup import MODELS, WeightsSource, machine_info, stats, write_video  # noqa: E402

BENCH_DIR = ROOT / "bench"
# Every model once as the target, every model once as the source.
SWITCH_CYCLE = ("baseline_cnn", "resnet50_cbam", "attention_cnn", "resnet50", "baseline_cnn")
SOURCE_FPS = 30.0
GAP_MARGIN_S = 0.5  # frames this long before a switch request count towards its gap
# What the app does besides labelling, and the arguments that turn it on from the start.
FEATURES = {
    "none": lambda tmp: [],
    "explain": lambda tmp: ["--explain"],  # Grad-CAM maps, recomputed 5 times a second
    "record": lambda tmp: ["--record", "--record-video", "--record-dir", str(tmp / "recordings")],
}


# ------------------------------------------------------------------ the display server

class Display:
    """Xvfb on a free display number (``-displayfd``), or nothing for the offscreen platform."""

    def __init__(self, offscreen: bool) -> None:
        self.offscreen = offscreen
        self.server = None
        self.name = None

    def __enter__(self) -> "Display":
        if self.offscreen:
            return self
        if shutil.which("Xvfb") is None:
            raise SystemExit("Xvfb is not installed (apt-get install xvfb); or use --offscreen")
        read_fd, write_fd = os.pipe()
        self.server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(write_fd)
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise SystemExit(f"Xvfb did not start: {self.server.stderr.read().decode(errors='replace')[-500:]}")
        self.name = f":{number}"
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.server.kill()

    def env(self) -> dict:
        env = dict(os.environ)
        for var in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR", "WAYLAND_DISPLAY"):
            env.pop(var, None)
        env.setdefault("GLOG_minloglevel", "2")
        if self.offscreen:
            env["QT_QPA_PLATFORM"] = "offscreen"
        else:
            env.update(DISPLAY=self.name, QT_QPA_PLATFORM="xcb")
        return env


# ------------------------------------------------------------------ one run of the app

def run_app(display: Display, video: Path, weights_dir: Path, model: str, seconds: float, tmp: Path,
            device: str = "cpu", switches=(), switch_every: float = 0.0, timeout: float = 180.0,
            extra_args=()) -> dict:
    """Run the app on ``video`` until ``seconds`` after its first result; its events and start time."""
    events_path = Path(tempfile.mkstemp(prefix="events_", suffix=".jsonl", dir=tmp)[1])
    env = display.env()
    env["FER_DESKTOP_PLUGIN"] = "bench.window_hooks:events"
    env["FER_DESKTOP_BENCH_EVENTS"] = str(events_path)
    env["FER_DESKTOP_BENCH_QUIT"] = f"{seconds:g}"
    if switches:
        env["FER_DESKTOP_BENCH_SWITCH"] = f"{switch_every:g}:" + ",".join(switches)
    command = [sys.executable, "-m", "fer_desktop", "--source", str(video), "--weights-dir", str(weights_dir),
               "--model", model, "--device", device, *extra_args]
    t0 = time.time()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise SystemExit(f"the app did not quit within {timeout:.0f} s: {out.decode(errors='replace')[-1500:]}")
    events = [json.loads(line) for line in events_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kinds = {e["event"] for e in events}
    if proc.returncode != 0 or not {"painted", "frame", "result", "quit"} <= kinds:
        raise SystemExit(f"the app failed (exit status {proc.returncode}, events {sorted(kinds)}): "
                         f"{out.decode(errors='replace')[-1500:]}")
    return {"t0": t0, "events": events}


def _first(events, kind: str, after: float = -np.inf, **match) -> dict | None:
    for e in events:
        if e["event"] == kind and e["t"] >= after and all(e.get(k) == v for k, v in match.items()):
            return e
    return None


def _gap_ms(times) -> dict:
    return stats(np.diff(np.asarray(times)) * 1e3) if len(times) >= 2 else stats([])


def startup(run: dict, settle: float) -> dict:
    """Seconds from just before the process started to each first event."""
    t0, events = run["t0"], run["events"]
    out = {}
    for key, kind in (("main_s", "main"), ("window_s", "painted"), ("first_frame_s", "frame"),
                      ("first_result_s", "result")):
        e = _first(events, kind)
        out[key] = round(e["t"] - t0, 3) if e else None
    # Does the video stall while the model and the detector load? The longest gap between
    # painted frames from the first frame to ``settle`` s after the first result.
    first_result = _first(events, "result")
    frames = [e["t"] for e in events if e["event"] == "frame" and e["t"] <= first_result["t"] + settle]
    out["max_frame_gap_ms"] = round(float(np.max(np.diff(frames))) * 1e3, 1) if len(frames) >= 2 else None
    return out


def rates(run: dict, source_fps: float, settle: float) -> dict:
    """Display and inference rates from ``settle`` s after the first result to the end of the run."""
    events = run["events"]
    start = _first(events, "result")["t"] + settle
    end = _first(events, "quit")["t"]
    frames = [e["t"] for e in events if e["event"] == "frame" and start <= e["t"] <= end]
    results = [e for e in events if e["event"] == "result" and start <= e["t"] <= end]
    span = end - start
    display = (len(frames) - 1) / (frames[-1] - frames[0]) if len(frames) >= 2 else 0.0
    inference = (len(results) - 1) / (results[-1]["t"] - results[0]["t"]) if len(results) >= 2 else 0.0
    return {"seconds": round(span, 2), "frames_painted": len(frames), "results": len(results),
            "display_fps": round(display, 2), "display_ratio": round(display / source_fps, 3),
            "inference_fps": round(inference, 2),
            "faces_mean": round(float(np.mean([r["faces"] for r in results])), 2) if results else 0.0,
            "frame_gap_ms": {**_gap_ms(frames), "max": round(float(np.max(np.diff(frames)) * 1e3), 1)
                             if len(frames) >= 2 else None}}


def switching(run: dict, first_model: str) -> list[dict]:
    """One row per switch: load time, first result of the new model, longest frame gap meanwhile."""
    events = run["events"]
    frames = np.asarray([e["t"] for e in events if e["event"] == "frame"])
    rows = []
    previous = first_model
    for s in (e for e in events if e["event"] == "switch"):
        t = s["t"]
        ready = _first(events, "model", after=t, model=s["model"])
        result = _first(events, "result", after=t, model=s["model"])
        end = result["t"] if result else _first(events, "quit")["t"]
        # The frames from just before the request until the first result, plus the one after.
        inside = frames[(frames >= t - GAP_MARGIN_S) & (frames <= end)]
        after = frames[frames > end][:1]
        window = np.concatenate([inside, after])
        rows.append({
            "from": previous, "to": s["model"],
            "model_ready_s": round(ready["t"] - t, 3) if ready else None,
            "first_result_s": round(result["t"] - t, 3) if result else None,
            "max_frame_gap_ms": round(float(np.max(np.diff(window))) * 1e3, 1) if len(window) >= 2 else None,
            "frames_painted": int(len(inside)),
        })
        previous = s["model"]
    return rows


# ------------------------------------------------------------------ main

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.gui", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="offscreen, two models, ~2 s each, one-face video only (a smoke run)")
    ap.add_argument("--offscreen", action="store_true", help="QT_QPA_PLATFORM=offscreen instead of Xvfb")
    ap.add_argument("--models", help="comma-separated (default: all four; quick: the two CNNs)")
    ap.add_argument("--seconds", type=float, help="seconds per model after its first result (default 8; quick 2)")
    ap.add_argument("--settle", type=float,
                    help="seconds after the first result that count as start-up, not towards the rates "
                         "(default 2; quick 0.5)")
    ap.add_argument("--switch-every", type=float, help="seconds between switches (default 3; quick 1.5)")
    ap.add_argument("--faces", default=None,
                    help="comma-separated faces per generated video (default 1,4; quick 1)")
    ap.add_argument("--features", default=None,
                    help="comma-separated runs per model and video: none (labels only), explain (maps on), "
                         "record (CSV + annotated video); default none,explain,record; quick: none")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--weights-dir", help="where trained weights are looked for (default: the usual folders)")
    ap.add_argument("--note", default="", help="a remark printed above the tables (e.g. what else ran)")
    ap.add_argument("--report", action="store_true", help="only rewrite RESULTS_GUI.md from results_gui.json")
    ap.add_argument("--out-dir", type=Path,
                    help="where results_gui.json and RESULTS_GUI.md go (default bench/; quick: a temporary folder)")
    return ap


def write_outputs(out_dir: Path, results: dict) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results_gui.json"
    path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    md = out_dir / "RESULTS_GUI.md"
    md.write_text(markdown(results), encoding="utf-8")
    return path, md


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        out_dir = args.out_dir or BENCH_DIR
        results = json.loads((out_dir / "results_gui.json").read_text(encoding="utf-8"))
        (out_dir / "RESULTS_GUI.md").write_text(markdown(results), encoding="utf-8")
        print(f"wrote {out_dir / 'RESULTS_GUI.md'}")
        return 0
    quick = args.quick
    offscreen = args.offscreen or quick
    models = [m.strip() for m in (args.models or ",".join(MODELS[:2] if quick else MODELS)).split(",") if m.strip()]
    unknown = set(models) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown models {sorted(unknown)}; choose from {', '.join(MODELS)}")
    seconds = args.seconds or (2.0 if quick else 8.0)
    settle = args.settle if args.settle is not None else (0.5 if quick else 2.0)
    every = args.switch_every or (1.5 if quick else 3.0)
    faces_list = [int(f) for f in (args.faces or ("1" if quick else "1,4")).split(",")]
    features = [f.strip() for f in (args.features or ("none" if quick else "none,explain,record")).split(",")]
    if set(features) - set(FEATURES):
        raise SystemExit(f"unknown features {sorted(set(features) - set(FEATURES))}; choose from "
                         f"{', '.join(FEATURES)}")
    cycle = [m for m in SWITCH_CYCLE if m in models]
    if len(set(cycle)) >= 2 and cycle[-1] != cycle[0]:
        cycle.append(cycle[0])

    with tempfile.TemporaryDirectory(prefix="fer_bench_gui_") as tmp_name:
        tmp = Path(tmp_name)
        source = WeightsSource(tmp, args.weights_dir)
        from training.recipes import best_recipe

        sizes = {m: source.trained_size(m) or best_recipe(m).input_size for m in models}
        weights_dir, kinds = source.folder_for_cli(sizes)
        videos = {}
        for n in faces_list:
            label = "1 face" if n == 1 else f"{n} faces"
            frames = int(SOURCE_FPS * (4 if quick else 12))  # loops if shorter than a run
            videos[label] = write_video(tmp / f"faces_{n}.mp4", faces=n, frames=frames, fps=SOURCE_FPS)
        results = {
            "benchmark": "gui", "mode": "quick" if quick else "full",
            "platform": "offscreen" if offscreen else "xcb", "device": args.device,
            "command": shlex.join(["python", "-m", "bench.gui", *(sys.argv[1:] if argv is None else argv)]),
            "date": datetime.date.today().isoformat(), "machine": machine_info([args.device]),
            "weights": {m: {"input_size": sizes[m], "kind": kinds[m]} for m in models},
            "weights_note": ("trained weights" if set(kinds.values()) == {"trained"} else
                             "untrained weights at the shipped input sizes, built by the benchmark"
                             if set(kinds.values()) == {"untrained"} else
                             "trained where found, else untrained at the shipped input sizes")
            + "; speed does not depend on the values",
            "note": args.note, "source_fps": SOURCE_FPS, "seconds": seconds, "settle_s": settle,
            "targets": TARGETS, "runs": [], "switching": [], "file": "results_gui.json",
        }
        with Display(offscreen) as display:
            for label, video in videos.items():
                for model, feature in [(m, f) for m in models for f in features]:
                    run = run_app(display, video, weights_dir, model, seconds + settle, tmp, device=args.device,
                                  extra_args=FEATURES[feature](tmp))
                    row = {"video": label, "model": model, "features": feature, "input_size": sizes[model],
                           "weights": kinds[model], "startup": startup(run, settle), **rates(run, SOURCE_FPS, settle)}
                    results["runs"].append(row)
                    print(f"{label:8} {model:14} {feature:8} window {fmt(row['startup']['window_s'])} s, "
                          f"display {row['display_fps']:.1f} fps ({row['display_ratio']:.0%}), "
                          f"inference {row['inference_fps']:.1f} fps", flush=True)
                if len(cycle) >= 2:
                    switches = cycle[1:]
                    run = run_app(display, video, weights_dir, cycle[0], every * (len(switches) + 0.5) + 0.5,
                                  tmp, device=args.device, switches=switches, switch_every=every)
                    rows = switching(run, cycle[0])
                    results["switching"].append({"video": label, "switch_every_s": every, "cycle": cycle,
                                                 "startup": startup(run, settle), "transitions": rows})
                    for t in rows:
                        print(f"{label:8} switch {t['from']} -> {t['to']}: first result "
                              f"{fmt(t['first_result_s'])} s, longest frame gap "
                              f"{fmt(t['max_frame_gap_ms'], '.0f')} ms", flush=True)
    results["summary"] = summary(results)
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="fer_bench_gui_out_")) if quick else BENCH_DIR)
    path, md = write_outputs(out_dir, results)
    print(f"wrote {path} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
