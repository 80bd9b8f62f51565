"""Benchmark of the app's real pipeline, stage by stage, for the four models.

    python -m bench.pipeline               # full run: writes bench/results_<device>.json and bench/RESULTS.md
    python -m bench.pipeline --quick       # a short run (a minute or two), results to a temporary folder
    python -m bench.pipeline --soak 10000  # memory over 10,000 frames, added to bench/results_cpu.json
                                           # (run it after a full run, which rewrites that file)
    python -m bench.pipeline --device cuda # the same tables on a GPU (bench/results_cuda.json)
    python -m bench.pipeline --report      # rewrite bench/RESULTS.md from the results files

Each frame goes through what the app does with it: decode (``cv2.VideoCapture``),
face detection (MediaPipe BlazeFace), cropping to 48x48 FER faces, one batched
forward pass, and drawing the overlay. The median and 95th percentile of every
stage are reported with the end-to-end frames per second, on a 640x360 video with
one face and one with four faces, generated from ``tests/data/astronaut.jpg``
unless ``--video`` is given. The same run times OpenCV's Haar cascade against
MediaPipe on the same frames, inference alone for batches of 1 and 8 faces, torch
thread counts, detection skipping (``fer_desktop.detection_skipping``) and, in a full run,
``fer-predict`` end to end.

Weights: a model with trained weights (``weights/<name>.safetensors``) is timed
with them at its card's input size; every other input size, and every model
without weights, uses untrained weights built here (speed does not depend on the
values). The results say which was used.

Here is the command line and the order of the run; ``pipeline_setup.py`` makes
the videos and weights, ``pipeline_measure.py`` measures, and
``pipeline_report.py`` writes the results files and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, "") and str(ROOT) not in sys.path:  # python bench/pipeline.py
    sys.path.insert(0, str(ROOT))

from bench.pipeline_measure import (FER_PREDICT_FRAMES, compare_detectors, fer_predict_runs,  # noqa: E402
                                    run_pipeline, soak, thread_runs, time_inference, tracking_effect)
from bench.pipeline_report import rewrite_report, write_outputs  # noqa: E402
from bench.pipeline_setup import (MODELS, WeightsSource, machine_info, median_p95,  # noqa: E402
                                  one_face_position, read_frames, write_video)

BENCH_DIR = ROOT / "bench"
# The paper's sizes (128, 224) and the smaller ones training may choose.
SIZES = {"baseline_cnn": (48, 64, 128), "attention_cnn": (48, 64, 128),
         "resnet50": (64, 96, 112, 224), "resnet50_cbam": (64, 96, 112, 224)}
QUICK_SIZES = {"baseline_cnn": (48, 128), "attention_cnn": (48, 128),
               "resnet50": (64, 224), "resnet50_cbam": (64, 224)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run: fewer sizes and frames")
    ap.add_argument("--soak", type=int, nargs="?", const=10000, metavar="N",
                    help="only the memory soak test over N frames (default 10000)")
    ap.add_argument("--video", type=Path, action="append",
                    help="video file(s) to use instead of the generated one-face and four-face videos")
    ap.add_argument("--faces", type=int, default=4,
                    help="faces in the generated several-face video (default 4)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated (default: all four)")
    ap.add_argument("--sizes", help="comma-separated input sizes for every model (default: per model)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="auto: the CPU, and CUDA too where present")
    ap.add_argument("--frames", type=int, help="frames timed per configuration (default 150; quick 20)")
    ap.add_argument("--max-seconds", type=float, help="time cap per configuration (default 15; quick 3)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--detect-every", type=int, default=1,
                    help="detector on every k-th frame in the pipeline tables (default 1: every frame)")
    ap.add_argument("--note", default="", help="a remark printed above the tables (e.g. what else ran)")
    ap.add_argument("--predict-frames", type=int, default=FER_PREDICT_FRAMES,
                    help=f"length of the video fer-predict is timed on (default {FER_PREDICT_FRAMES})")
    ap.add_argument("--no-fer-predict", action="store_true", help="skip timing fer-predict")
    ap.add_argument("--weights-dir", help="where trained weights are looked for (default: the usual folders)")
    ap.add_argument("--report", action="store_true",
                    help="only rewrite RESULTS.md from the results_*.json files in --out-dir "
                         "(default bench/)")
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", type=Path,
                    help="where results_<device>.json and RESULTS.md go (default: bench/ for full and "
                         "soak runs, a temporary folder for --quick)")
    return ap


@dataclass
class Run:
    """One benchmark run: what the command line asked for, and what it runs on."""

    args: argparse.Namespace
    models: list[str]
    devices: list[str]
    quick: bool
    frames: int  # timed per configuration
    max_seconds: float  # per configuration
    mode: str  # full, quick or soak
    out_dir: Path
    command: str  # as shown in the results, without the note
    videos: dict[str, Path]
    source: WeightsSource
    sizes_for: Callable[[str], list[int]]
    detector: object


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        print(f"wrote {rewrite_report(args.out_dir or BENCH_DIR)}")
        return 0
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's start-up chatter
    import fer_desktop.classifier  # noqa: F401  first, as in the app: it sets torch's OpenMP wait policy
    import torch

    from fer_desktop.detection import FaceDetector

    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            raise SystemExit(f"unknown model {m}; choose from {', '.join(MODELS)}")
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else (
        ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("CUDA was asked for but is not available")
    quick = args.quick
    mode = "soak" if args.soak else "quick" if quick else "full"
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="fer_bench_")) if quick else BENCH_DIR)

    with tempfile.TemporaryDirectory(prefix="fer_bench_") as tmp_name:
        tmp = Path(tmp_name)
        source = WeightsSource(tmp, args.weights_dir)
        run = Run(args, models, devices, quick, args.frames or (20 if quick else 150),
                  args.max_seconds or (3.0 if quick else 15.0), mode, out_dir, _command(argv),
                  _videos(args, tmp), source, _sizes_for(args, source), FaceDetector())
        try:
            if args.probe:  # one configuration, for thread_runs in a parent process
                return _probe_run(run)
            if args.soak:
                return _soak_run(run)
            kinds_seen: set[str] = set()
            for device in devices:
                _device_run(run, device, tmp, kinds_seen)
        finally:
            run.detector.close()
    return 0


def _command(argv) -> str:
    """The command line as the results show it: the note is printed on its own."""
    shown = list(sys.argv[1:] if argv is None else argv)
    if "--note" in shown:
        i = shown.index("--note")
        del shown[i:i + 2]
    return " ".join(["python -m bench.pipeline", *(a for a in shown if not a.startswith("--note="))])


def _videos(args, tmp: Path) -> dict[str, Path]:
    if args.video:
        return {p.name: p for p in args.video}
    n_video_frames = 30 if args.quick else 90
    videos = {"1 face": write_video(tmp / "one_face.mp4", 1, n_video_frames)}
    if args.faces > 1 and not args.soak:
        videos[f"{args.faces} faces"] = write_video(tmp / "faces.mp4", args.faces, n_video_frames)
    return videos


def _sizes_for(args, source: WeightsSource) -> Callable[[str], list[int]]:
    """The input sizes timed for a model: those asked for, or its defaults, and its trained one."""
    def sizes_for(name: str) -> list[int]:
        if args.sizes:
            sizes = [int(s) for s in args.sizes.split(",")]
        else:
            sizes = list((QUICK_SIZES if args.quick else SIZES)[name])
        trained = source.trained_size(name)
        if trained and trained not in sizes:
            sizes.append(trained)
        return sorted(sizes)

    return sizes_for


def _probe_run(run: Run) -> int:
    name = run.models[0]
    clf, _ = run.source.classifier(name, run.sizes_for(name)[0], run.devices[0])
    r = run_pipeline(next(iter(run.videos.values())), run.detector, clf, run.frames, run.max_seconds)
    print("PROBE " + json.dumps(r), flush=True)
    return 0


def _soak_run(run: Run) -> int:
    args, device = run.args, run.devices[0]
    name = run.models[0]
    size = run.sizes_for(name)[0]
    clf, kind = run.source.classifier(name, size, device)
    video = next(iter(run.videos.values()))
    print(f"soak: {name} at {size} ({kind} weights), {args.soak} frames on {device}…", flush=True)
    result = soak(video, run.detector, clf, args.soak, args.detect_every)
    result.update(model=name, input_size=size, weights=kind, detect_every=args.detect_every,
                  device=device, command=run.command, date=time.strftime("%Y-%m-%d"))
    print(json.dumps(result, indent=1))
    path = run.out_dir / f"results_{device}.json"
    if path.exists():
        results = json.loads(path.read_text(encoding="utf-8"))
    else:
        results = new_results(device, run.devices, run.mode, run.command, "see soak")
    results["soak"] = result
    json_path, md_path = write_outputs(run.out_dir, results)
    print(f"wrote {json_path} and {md_path}")
    return 0


def _device_run(run: Run, device: str, tmp: Path, kinds_seen: set[str]) -> None:
    """Every table for one device, written to its results file and RESULTS.md."""
    results = new_results(device, run.devices, run.mode, run.command, "")
    results["note"] = run.args.note
    if device == "cpu":
        first = {v: read_frames(p, 30 if run.quick else 90) for v, p in run.videos.items()}
        print("detectors: MediaPipe against Haar…", flush=True)
        results["detectors"] = {v: compare_detectors(f, run.detector) for v, f in first.items()}
        for v, d in results["detectors"].items():
            mp, hr = d["mediapipe"], d["haar"]
            print(f"  {v}: mediapipe {median_p95(mp['ms'])} ms, {mp['faces_mean']} faces; "
                  f"haar {median_p95(hr['ms'])} ms, {hr['faces_mean']} faces", flush=True)

    print(f"pipeline on {device}…", flush=True)
    for name in run.models:
        for size in run.sizes_for(name):
            _model_rows(run, results, name, size, device, kinds_seen)

    if device == "cpu":
        _cpu_only_tables(run, results, first, device, tmp)
    results["weights_note"] = weights_note(kinds_seen, run.args.weights_dir)
    json_path, md_path = write_outputs(run.out_dir, results)
    print(f"wrote {json_path} and {md_path}")


def _model_rows(run: Run, results: dict, name: str, size: int, device: str, kinds_seen: set[str]) -> None:
    """The pipeline on every video, and inference alone, for ``name`` at ``size``."""
    quick, max_seconds = run.quick, run.max_seconds
    clf, kind = run.source.classifier(name, size, device)
    kinds_seen.add(kind)
    for video_name, video in run.videos.items():
        r = run_pipeline(video, run.detector, clf, run.frames, max_seconds, run.args.detect_every)
        r.update(video=video_name, model=name, input_size=size, weights=kind)
        results["pipeline"].append(r)
        print(f"  {video_name:>8} {name:>14} {size:>3}: detect {median_p95(r['detect'])}  infer "
              f"{median_p95(r['infer'])}  total {median_p95(r['total'])}  {r['fps']} FPS", flush=True)
    b1 = time_inference(clf, 1, 200 if not quick else 20, max_seconds / 2)
    b8 = time_inference(clf, 8, 100 if not quick else 10, max_seconds / 2)
    row = {"model": name, "input_size": size, "weights": kind, "flip_tta": clf.hflip_tta,
           "batch1": b1, "batch8": b8}
    if clf.hflip_tta:  # what the card's flip test-time augmentation costs
        clf.hflip_tta = False
        row["batch1_no_flip"] = time_inference(clf, 1, 200 if not quick else 20, max_seconds / 2)
        row["batch8_no_flip"] = time_inference(clf, 8, 100 if not quick else 10, max_seconds / 2)
        clf.hflip_tta = True
    results["inference"].append(row)
    print(f"  {'predict':>8} {name:>14} {size:>3}: batch 1 {median_p95(b1)}  batch 8 {median_p95(b8)}"
          + (f"  (no flip: {median_p95(row['batch1_no_flip'])}, {median_p95(row['batch8_no_flip'])})"
             if "batch1_no_flip" in row else ""), flush=True)


def _cpu_only_tables(run: Run, results: dict, first: dict, device: str, tmp: Path) -> None:
    """Threads, detection skipping and fer-predict: the tables measured on the CPU only."""
    args = run.args
    one_face = next(iter(run.videos.values()))
    results["threads"] = thread_runs(one_face, run.models, run.sizes_for, run.frames, run.max_seconds / 2,
                                     run.quick, run.source, run.detector, args.weights_dir)
    # Detection skipping: time saved and results changed, on the same frames.
    name = run.models[0]
    clf, _ = run.source.classifier(name, run.sizes_for(name)[0], device)
    results["tracking"] = {
        v: tracking_effect(first[v], run.detector, clf, (1, 2, 3, 5),
                           truth=None if args.video or v != "1 face"
                           else [one_face_position(i) for i in range(len(first[v]))])
        for v in first}
    for v, rows in results["tracking"].items():
        for r in rows:
            print(f"  tracking {v} k={r['detect_every']}: detector on "
                  f"{100 * r['detector_runs_share']:.0f}% of frames, box shift max "
                  f"{r['box_shift_px_max']} px, prob change max {r['prob_diff_max']}", flush=True)
    if not run.quick and not args.no_fer_predict and not args.video:
        results["fer_predict"] = fer_predict_runs(run.source, run.models, run.sizes_for, tmp, args.threads,
                                                  args.predict_frames)


def new_results(device: str, devices, mode: str, command: str, weights_note_text: str) -> dict:
    import torch

    return {"format": "fer-desktop-bench/1", "device": device, "mode": mode, "command": command.strip(),
            "date": time.strftime("%Y-%m-%d"), "machine": machine_info(devices),
            "torch_threads": torch.get_num_threads(), "weights_note": weights_note_text,
            "detectors": {}, "pipeline": [], "inference": [], "threads": [], "tracking": {}}


def weights_note(kinds: set, weights_dir) -> str:
    if kinds == {"trained"}:
        return "trained weights from the weights folder"
    if "trained" in kinds:
        return ("trained weights where the weights folder has them (at their card's input size); "
                "untrained weights built by the benchmark for every other size")
    return ("untrained weights built by the benchmark (no trained weights were found); "
            "speed does not depend on them")


if __name__ == "__main__":
    sys.exit(main())
