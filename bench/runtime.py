"""The lean runtime against PyTorch: engine time, fer-predict, a photo's result, imports, install size.

    python -m bench.runtime                          # writes bench/runtime/results.json and RESULTS.md
    python -m bench.runtime --venv .venv-runtime     # also the size of that (runtime-only) environment
    python -m bench.runtime --quick                  # a short run, to a temporary folder

Needs the training extra (torch, onnx) beside the runtime: PyTorch is what it is compared with.
Run it on a quiet machine: every figure is a wall-clock time.

- **engine**: one face and its mirror (the card's test-time flip: a batch of two) through
  ``predict``, on PyTorch (BatchNorm folded, channels_last, as the app ran it before), ONNX
  Runtime fp32 and the shipped runtime file (int8 where it kept accuracy); the rounds of the
  three engines interleaved, minimum and median of the per-round medians.
- **fer-predict**: every frame of a 640x360 one-face video, the process's whole wall time
  (start-up included), ``--backend onnx`` against ``--backend torch``.
- **photo**: ``fer-predict photo.jpg`` from process start to exit (its one result printed).
- **imports**: each module imported alone in a fresh interpreter.
- **install**: ``du`` of a runtime-only environment and its five largest packages.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, "") and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pipeline_setup import MODELS, machine_info, write_video  # noqa: E402

OUT_DIR = ROOT / "bench" / "runtime"
PHOTO = ROOT / "tests" / "data" / "astronaut.jpg"
IMPORTS = {"numpy": "import numpy", "cv2": "import cv2", "onnxruntime": "import onnxruntime",
           "mediapipe": "import mediapipe",
           "face detector, created": "from fer_desktop.detection import FaceDetector; FaceDetector().close()",
           "torch": "import torch"}
TARGETS_FPS = {"baseline_cnn": 150, "attention_cnn": 150, "resnet50": 100, "resnet50_cbam": 100, "ensemble": 60}
TARGET_PHOTO_S = 1.0


def engine_times(rounds: int, calls: int, tmp: Path) -> dict:
    from fer_desktop.classifier import load_classifier
    from fer_desktop.weights import find_weights
    from training.commands.export import main as export

    fp32_dir = tmp / "fp32"
    fp32_dir.mkdir()
    for name in MODELS:
        for suffix in (".safetensors", ".json"):
            shutil.copy2(find_weights(name).with_suffix(suffix), fp32_dir)
    export([*MODELS, "--weights-dir", str(fp32_dir), "--precision", "fp32"])
    face = np.random.default_rng(0).integers(0, 256, (1, 48, 48), dtype=np.uint8)
    results = {}
    for name in MODELS:
        engines = {"torch": load_classifier(name, backend="torch", device="cpu"),
                   "onnx_fp32": load_classifier(name, weights_dir=fp32_dir, backend="onnx"),
                   "onnx_shipped": load_classifier(name, backend="onnx")}
        per_round = {k: [] for k in engines}
        for clf in engines.values():
            for _ in range(5):
                clf.predict(face)  # warm-up
        for _ in range(rounds):
            for key, clf in engines.items():
                times = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    clf.predict(face)
                    times.append(time.perf_counter() - t0)
                per_round[key].append(float(np.median(times)) * 1e3)
        results[name] = {k: {"min_ms": round(min(v), 2), "median_ms": round(float(np.median(v)), 2)}
                         for k, v in per_round.items()}
        results[name]["shipped_precision"] = engines["onnx_shipped"].precision
        print(f"engine {name}: " + ", ".join(f"{k} {v['min_ms']} ms" for k, v in results[name].items()
                                              if isinstance(v, dict)), file=sys.stderr)
    return results


def fer_predict(args: list[str]) -> float:
    """Wall seconds of one ``fer-predict`` process; fails loudly if it does."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fer_desktop.predict_cli", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"fer-predict {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return wall


def fer_predict_times(video: Path, frames: int, repeats: int) -> dict:
    results = {}
    for name in [*MODELS, "ensemble"]:
        results[name] = {}
        for backend in ("onnx", "torch"):
            walls = [fer_predict([str(video), "--model", name, "--backend", backend, "--csv", "/dev/null"])
                     for _ in range(repeats)]
            results[name][backend] = {"wall_s": round(min(walls), 2), "fps": round(frames / min(walls), 1)}
        print(f"fer-predict {name}: {results[name]}", file=sys.stderr)
    return results


def photo_times(repeats: int) -> dict:
    results = {}
    for name in [*MODELS, "ensemble"]:
        results[name] = {backend: round(min(fer_predict([str(PHOTO), "--model", name, "--backend", backend])
                                            for _ in range(repeats)), 2) for backend in ("onnx", "torch")}
        print(f"photo {name}: {results[name]}", file=sys.stderr)
    return results


def import_times(repeats: int) -> dict:
    results = {}
    for label, statement in IMPORTS.items():
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     cwd=ROOT).stdout) for _ in range(repeats)]
        results[label] = round(min(runs), 3)
    print(f"imports: {results}", file=sys.stderr)
    return results


def install_size(venv: Path) -> dict:
    def du(path: Path) -> int:
        return int(subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True).stdout.split()[0])

    site = next(venv.glob("lib/python*/site-packages"))
    entries = {p.name: du(p) for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__"))}
    top = sorted(entries.items(), key=lambda kv: -kv[1])[:5]
    has_torch = (site / "torch").exists()
    return {"total_mib": round(du(venv) / 1024), "largest_mib": {k: round(v / 1024) for k, v in top},
            "torch_installed": has_torch}


def report(results: dict) -> str:
    m = results["machine"]
    lines = [f"# The lean runtime: ONNX Runtime against PyTorch ({results['date']})", "",
             f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores; Python {m.get('python')}, "
             f"onnxruntime {results['versions']['onnxruntime']}, torch {results['versions']['torch']}. "
             f"Command: `{results['command']}`.", ""]
    if "engine" in results:
        lines += ["## One face and its mirror through `predict` (ms; minimum / median of the round medians)", "",
                  "| model | PyTorch | ONNX Runtime fp32 | ONNX Runtime, shipped file | shipped precision | "
                  "shipped vs PyTorch |", "|---|---|---|---|---|---|"]
        for name, r in results["engine"].items():
            speedup = r["torch"]["min_ms"] / r["onnx_shipped"]["min_ms"]
            lines.append(f"| `{name}` | {r['torch']['min_ms']} / {r['torch']['median_ms']} | "
                         f"{r['onnx_fp32']['min_ms']} / {r['onnx_fp32']['median_ms']} | "
                         f"{r['onnx_shipped']['min_ms']} / {r['onnx_shipped']['median_ms']} | "
                         f"{r['shipped_precision']} | {speedup:.1f}x |")
        lines.append("")
    if "fer_predict" in results:
        lines += [f"## `fer-predict` over every frame of a 640x360 one-face video ({results['video_frames']} "
                  "frames), process start included", "",
                  "| model | ONNX Runtime (default) | PyTorch (`--backend torch`) | target |", "|---|---|---|---|"]
        for name, r in results["fer_predict"].items():
            target = TARGETS_FPS[name]
            verdict = "met" if r["onnx"]["fps"] >= target else "missed"
            lines.append(f"| `{name}` | {r['onnx']['fps']} fps ({r['onnx']['wall_s']} s) | "
                         f"{r['torch']['fps']} fps ({r['torch']['wall_s']} s) | {target} fps: {verdict} |")
        lines.append("")
    if "photo" in results:
        lines += ["## `fer-predict photo.jpg`: process start to exit, its result printed (s)", "",
                  "| model | ONNX Runtime | PyTorch | target |", "|---|---|---|---|"]
        for name, r in results["photo"].items():
            verdict = "met" if r["onnx"] <= TARGET_PHOTO_S else "missed"
            lines.append(f"| `{name}` | {r['onnx']} | {r['torch']} | {TARGET_PHOTO_S} s: {verdict} |")
        lines.append("")
    if "imports" in results:
        lines += ["## Imports, each alone in a fresh interpreter (s)", "", "| module | s |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in results["imports"].items()] + [""]
    if "install" in results:
        r = results["install"]
        lines += [f"## Runtime-only environment (`pip install -e .`): {r['total_mib']} MiB, "
                  f"torch {'installed' if r['torch_installed'] else 'not installed'}", "",
                  "| largest packages | MiB |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in r["largest_mib"].items()] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.runtime", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and frames, results to a temporary folder")
    ap.add_argument("--venv", type=Path, help="a runtime-only environment to measure (du)")
    ap.add_argument("--only", help="comma-separated parts: engine,fer_predict,photo,imports")
    ap.add_argument("--out-dir", type=Path)
    args = ap.parse_args(argv)
    import onnxruntime
    import torch

    parts = set((args.only or "engine,fer_predict,photo,imports").split(","))
    out_dir = args.out_dir or (Path(tempfile.mkdtemp()) if args.quick else OUT_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = 60 if args.quick else 450
    results = {"date": datetime.date.today().isoformat(), "machine": machine_info(["cpu"]),
               "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__},
               "command": "python -m bench.runtime" + (" " + " ".join(argv or sys.argv[1:])).rstrip()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "engine" in parts:
            results["engine"] = engine_times(3 if args.quick else 7, 10 if args.quick else 50, tmp)
        if "fer_predict" in parts:
            video = write_video(tmp / "one_face.mp4", faces=1, frames=frames)
            results["video_frames"] = frames
            results["fer_predict"] = fer_predict_times(video, frames, 1 if args.quick else 2)
        if "photo" in parts:
            results["photo"] = photo_times(1 if args.quick else 3)
        if "imports" in parts:
            results["imports"] = import_times(1 if args.quick else 3)
    if args.venv:
        results["install"] = install_size(args.venv)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "RESULTS.md").write_text(report(results) + "\n")
    print(f"wrote {out_dir / 'RESULTS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
