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
thread counts, detection skipping (``fer_desktop.tracking``) and, in a full run,
``fer-predict`` end to end.

Weights: a model with trained weights (``weights/<name>.safetensors``) is timed
with them at its card's input size; every other input size, and every model
without weights, uses untrained weights built here (speed does not depend on the
values). The results say which was used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, "") and str(ROOT) not in sys.path:  # python bench/pipeline.py
    sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / "bench"
FACE_PHOTO = ROOT / "tests" / "data" / "astronaut.jpg"
MODELS = ("baseline_cnn", "attention_cnn", "resnet50", "resnet50_cbam")
# The paper's sizes (128, 224) and the smaller ones training may choose.
SIZES = {"baseline_cnn": (48, 64, 128), "attention_cnn": (48, 64, 128),
         "resnet50": (64, 96, 112, 224), "resnet50_cbam": (64, 96, 112, 224)}
QUICK_SIZES = {"baseline_cnn": (48, 128), "attention_cnn": (48, 128),
               "resnet50": (64, 224), "resnet50_cbam": (64, 224)}
STAGES = ("decode", "detect", "crop", "infer", "overlay", "total")
HAAR_PARAMS = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (30, 30)}
WARMUP_FRAMES = 5
FER_PREDICT_FRAMES = 300  # 10 s of 30 fps video


# ------------------------------------------------------------------ small helpers

def stats(values_ms) -> dict:
    """Median, 95th percentile and mean of a list of milliseconds."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"median": None, "p95": None, "mean": None, "n": 0}
    return {"median": round(float(np.median(a)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "mean": round(float(a.mean()), 3), "n": int(a.size)}


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(devices) -> dict:
    import cv2
    import mediapipe
    import torch

    info = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "opencv": cv2.__version__,
        "mediapipe": mediapipe.__version__,
        "numpy": np.__version__,
    }
    with contextlib.suppress(OSError):
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    if "cuda" in devices:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


# ------------------------------------------------------------------ inputs

def write_video(path: Path, faces: int = 1, frames: int = 90, fps: float = 30.0,
                size: tuple[int, int] = (640, 360)) -> Path:
    """An mp4 of ``faces`` copies of the test face photo drifting over a grey background.

    One face is laid out as in the tests (a 180-pixel face, its box about 100
    pixels); several faces share the frame in a grid, each as large as fits, so
    that BlazeFace short-range still finds all of them.
    """
    import cv2

    width, height = size
    photo = cv2.imread(str(FACE_PHOTO), cv2.IMREAD_COLOR)
    if photo is None:
        raise SystemExit(f"cannot read the face photo {FACE_PHOTO}")
    photo = photo[32:173, 65:206]  # framed close around the face, as tests/conftest.py does
    rows = 1 if faces <= 2 else 2
    cols = math.ceil(faces / rows)
    cell_w, cell_h = width // cols, height // rows
    side = 180 if faces == 1 else min(180, cell_w - 20, cell_h - 20)
    face = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write mp4v video here")
    for i in range(frames):
        frame = np.full((height, width, 3), 90, np.uint8)
        for k in range(faces):
            if faces == 1:
                x, y = one_face_position(i)
            else:
                cx, cy = (k % cols) * cell_w + cell_w // 2, (k // cols) * cell_h + cell_h // 2
                x = cx - side // 2 + int(8 * np.sin(i / 6 + k))
                y = cy - side // 2 + int(6 * np.cos(i / 7 + k))
            x, y = min(max(0, x), width - side), min(max(0, y), height - side)
            frame[y:y + side, x:x + side] = face if k % 2 == 0 else cv2.flip(face, 1)
        writer.write(frame)
    writer.release()
    return path


def one_face_position(i: int) -> tuple[int, int]:
    """Top-left corner of the face photo in frame ``i`` of the one-face video (the ground truth)."""
    return 20 + int(20 * np.sin(i / 6)), 90 + int(15 * np.cos(i / 7))


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"{path}: no frame could be decoded")
    return frames


def make_untrained_weights(folder: Path, name: str, input_size: int, seed: int = 0) -> Path:
    """Untrained weights for ``name`` at ``input_size``, with a card like training writes."""
    import torch

    from fer_desktop.models import create_model
    from fer_desktop.weights import save_weights
    from training.recipes import normalisation

    torch.manual_seed(seed)
    mean, std = normalisation(name)
    card = {"model": name, "architecture": {}, "input_size": int(input_size), "mean": list(mean),
            "std": list(std), "recipe": "untrained (benchmark)", "metrics": {}}
    return save_weights(create_model(name), card, Path(folder) / f"{name}.safetensors")


class WeightsSource:
    """Trained weights where they exist, else untrained ones built in a temporary folder."""

    def __init__(self, tmp: Path, weights_dir: str | None = None) -> None:
        self.tmp = Path(tmp)
        self.weights_dir = weights_dir

    def trained_size(self, name: str) -> int | None:
        from fer_desktop.weights import WeightsError, find_weights, read_card

        path = find_weights(name, self.weights_dir)
        if path is None:
            return None
        try:
            return int(read_card(path)["input_size"])
        except (WeightsError, KeyError, ValueError):
            return None

    def path(self, name: str, size: int) -> tuple[Path, str]:
        """(weights file, 'trained' or 'untrained') for ``name`` at ``size``."""
        from fer_desktop.weights import find_weights

        if self.trained_size(name) == size:
            return find_weights(name, self.weights_dir), "trained"
        folder = self.tmp / f"untrained_{size}"
        path = folder / f"{name}.safetensors"
        if not path.exists():
            make_untrained_weights(folder, name, size)
        return path, "untrained"

    def classifier(self, name: str, size: int, device: str):
        from fer_desktop.classifier import load_classifier

        path, kind = self.path(name, size)
        return load_classifier(name, device=device, weights_path=path), kind

    def folder_for_cli(self, sizes: dict[str, int]) -> tuple[Path, dict[str, str]]:
        """A folder holding one weights file per model, for ``fer-predict --weights-dir``."""
        folder = self.tmp / ("cli_" + "_".join(f"{n}{s}" for n, s in sorted(sizes.items())))
        folder.mkdir(parents=True, exist_ok=True)
        kinds = {}
        for name, size in sizes.items():
            src, kinds[name] = self.path(name, size)
            # The runtime file too, where exported: without it the app would run PyTorch.
            for suffix in (".safetensors", ".json", ".onnx"):
                dst = folder / f"{name}{suffix}"
                if not dst.exists() and src.with_suffix(suffix).exists():
                    shutil.copyfile(src.with_suffix(suffix), dst)
        return folder, kinds


# ------------------------------------------------------------------ measurements

def run_pipeline(video: Path, detector, classifier, frames: int, max_seconds: float,
                 detect_every: int = 1) -> dict:
    """The app's loop on ``video`` (looped if short): per-stage times and end-to-end FPS."""
    import cv2

    from fer_desktop.overlay import draw_results
    from fer_desktop.pipeline import FramePipeline

    pipeline = FramePipeline(detector, classifier, detect_every=detect_every)
    cap = cv2.VideoCapture(str(video))
    times = {s: [] for s in STAGES}
    faces_seen = []
    done, start = 0, None
    while done < frames + WARMUP_FRAMES:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:  # loop the video
            cap.release()
            cap = cv2.VideoCapture(str(video))
            t0 = time.perf_counter()
            ok, frame = cap.read()
            if not ok:
                raise SystemExit(f"{video}: no frame could be decoded")
        t1 = time.perf_counter()
        result = pipeline(frame)
        t2 = time.perf_counter()
        draw_results(frame, result.faces)
        t3 = time.perf_counter()
        done += 1
        if done <= WARMUP_FRAMES:
            if done == WARMUP_FRAMES:
                start = time.perf_counter()
            continue
        times["decode"].append((t1 - t0) * 1e3)
        for key in ("detect", "crop", "infer"):
            times[key].append(result.timings_ms[key])
        times["overlay"].append((t3 - t2) * 1e3)
        times["total"].append((t3 - t0) * 1e3)
        faces_seen.append(len(result.faces))
        if time.perf_counter() - start > max_seconds and len(times["total"]) >= 10:
            break
    cap.release()
    elapsed = time.perf_counter() - start
    n = len(times["total"])
    out = {s: stats(v) for s, v in times.items()}
    out.update(frames=n, fps=round(n / elapsed, 2) if elapsed > 0 else None,
               faces_per_frame=round(float(np.mean(faces_seen)), 2) if faces_seen else 0.0)
    if detect_every > 1:
        out["detect_share"] = round(pipeline.detector.detections / max(1, pipeline.detector.frames), 3)
    return out


def compare_detectors(frames: list[np.ndarray], detector) -> dict:
    """MediaPipe (as the app runs it) against OpenCV's Haar cascade on the same frames."""
    import cv2

    haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if haar.empty():
        raise SystemExit("OpenCV's haarcascade_frontalface_default.xml is missing")
    mp_ms, mp_faces, haar_ms, haar_faces = [], [], [], []
    detector.detect(frames[0])
    for frame in frames:
        t0 = time.perf_counter()
        boxes = detector.detect(frame)
        t1 = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = haar.detectMultiScale(gray, **HAAR_PARAMS)
        t2 = time.perf_counter()
        mp_ms.append((t1 - t0) * 1e3)
        haar_ms.append((t2 - t1) * 1e3)
        mp_faces.append(len(boxes))
        haar_faces.append(len(found))
    return {
        "frames": len(frames),
        "mediapipe": {"ms": stats(mp_ms), "faces_mean": round(float(np.mean(mp_faces)), 2),
                      "faces_min": int(min(mp_faces)), "faces_max": int(max(mp_faces))},
        "haar": {"ms": stats(haar_ms), "faces_mean": round(float(np.mean(haar_faces)), 2),
                 "faces_min": int(min(haar_faces)), "faces_max": int(max(haar_faces)),
                 "params": {k: list(v) if isinstance(v, tuple) else v for k, v in HAAR_PARAMS.items()},
                 "includes": "BGR->gray conversion"},
    }


def time_inference(classifier, batch: int, reps: int, max_seconds: float, sync=None) -> dict:
    """``Classifier.predict`` alone on ``batch`` faces (preprocessing included)."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    for _ in range(3):
        classifier.predict(faces)
    times, start = [], time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        classifier.predict(faces)  # returns numpy: the device has finished
        times.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() - start > max_seconds and len(times) >= 5:
            break
    return stats(times)


def tracking_effect(frames: list[np.ndarray], detector, classifier, every_values, truth=None) -> list[dict]:
    """Detection skipping against detection on every frame: time saved and results changed.

    With ``truth`` (the face's true position per frame, one-face video) it also
    reports how far the boxes stray from where the face really is: the spread
    (standard deviation) of box corner minus true corner, which for ``k=1`` is the
    detector's own jitter.
    """
    from fer_desktop.pipeline import FramePipeline
    from fer_desktop.preprocessing import crop_faces

    reference = None
    rows = []
    for every in every_values:
        pipeline = FramePipeline(detector, classifier, detect_every=every)
        results, detect_ms = [], []
        for frame in frames:
            r = pipeline(frame)
            results.append(r)
            detect_ms.append(r.timings_ms["detect"])
        if reference is None:
            reference = results
        shift, prob_diff, crop_diff, label_changes, count_diff = [], [], [], 0, 0
        for frame, ref, got in zip(frames, reference, results):
            if len(ref.faces) != len(got.faces):
                count_diff += 1
                continue
            for a in ref.faces:  # each face against the nearest one found with skipping
                b = min(got.faces, key=lambda f: abs(f.box.x - a.box.x) + abs(f.box.y - a.box.y))
                shift.append(max(abs(a.box.x - b.box.x), abs(a.box.y - b.box.y), abs(a.box.w - b.box.w)))
                prob_diff.append(float(np.abs(a.probs - b.probs).max()))
                crops = crop_faces(frame, [a.box, b.box]).astype(np.int16)
                crop_diff.append(float(np.abs(crops[0] - crops[1]).mean()))
                label_changes += a.label != b.label
        runs = pipeline.detector
        detector_share = runs.detections / max(1, runs.frames) if every > 1 else 1.0
        row = {}
        if truth is not None:
            off = np.array([(r.faces[0].box.x - tx, r.faces[0].box.y - ty)
                            for r, (tx, ty) in zip(results, truth) if len(r.faces) == 1], dtype=np.float64)
            if len(off):
                row["error_vs_truth_px_std"] = round(float(off.std(axis=0).max()), 2)
        rows.append({**row, "detect_every": every, "detect_ms": stats(detect_ms),
                     "detector_runs_share": round(detector_share, 3),
                     "box_shift_px_max": int(max(shift)) if shift else 0,
                     "box_shift_px_mean": round(float(np.mean(shift)), 2) if shift else 0.0,
                     "crop_diff_mean": round(float(np.mean(crop_diff)), 2) if crop_diff else 0.0,
                     "prob_diff_max": round(max(prob_diff), 4) if prob_diff else 0.0,
                     "label_changes": int(label_changes), "frames_face_count_differs": count_diff})
    return rows


def time_fer_predict(video: Path, weights_dir: Path, model: str, frames: int, tmp: Path,
                     threads: int | None) -> dict:
    """``fer-predict VIDEO --model NAME --csv out.csv`` end to end, start-up included."""
    exe = shutil.which("fer-predict", path=str(Path(sys.executable).parent) + os.pathsep
                       + os.environ.get("PATH", ""))
    cmd = [exe] if exe else [sys.executable, "-m", "fer_desktop.predict_cli"]
    out_csv = tmp / f"predict_{model}.csv"
    cmd += [str(video), "--model", model, "--csv", str(out_csv), "--weights-dir", str(weights_dir),
            "--device", "cpu"]
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    row = {"model": model, "wall_s": round(wall, 2), "frames": frames, "exit_status": proc.returncode,
           "fps": round(frames / wall, 2) if proc.returncode == 0 else None}
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1][:300]
    return row


def soak(video: Path, detector, classifier, n_frames: int, detect_every: int,
         warmup: int | None = None) -> dict:
    """Resident memory while the pipeline processes ``n_frames`` frames (video looped).

    Memory is read after ``warmup`` frames (default: 200, fewer for short runs) and at the end.
    """
    import gc

    import cv2

    warmup = warmup if warmup is not None else max(1, min(200, n_frames // 10))

    from fer_desktop.overlay import draw_results
    from fer_desktop.pipeline import FramePipeline

    pipeline = FramePipeline(detector, classifier, detect_every=detect_every)
    cap = cv2.VideoCapture(str(video))
    samples, rss_warm, start = [], None, time.perf_counter()
    total = warmup + n_frames
    for i in range(total):
        ok, frame = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(video))
            ok, frame = cap.read()
        draw_results(frame, pipeline(frame).faces)
        if i + 1 == warmup:
            gc.collect()
            rss_warm = rss_mb()
            start = time.perf_counter()
        if i + 1 > warmup and (i + 1 - warmup) % max(1, n_frames // 10) == 0:
            samples.append({"frame": i + 1 - warmup, "rss_mb": round(rss_mb(), 1)})
    cap.release()
    elapsed = time.perf_counter() - start
    gc.collect()
    rss_end = rss_mb()
    return {"frames": n_frames, "warmup_frames": warmup, "rss_after_warmup_mb": round(rss_warm, 1),
            "rss_end_mb": round(rss_end, 1), "growth_mb": round(rss_end - rss_warm, 1),
            "target_growth_mb": 50, "fps": round(n_frames / elapsed, 1), "samples": samples}


# ------------------------------------------------------------------ report

def _ms(s: dict | None) -> str:
    if not s or s.get("median") is None:
        return "-"
    return f"{s['median']:.1f} / {s['p95']:.1f}"


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(*names) -> list[str]:
    return [_row(*names), _row(*["---"] * len(names))]


def markdown(results: list[dict]) -> str:
    """The markdown tables of one or more result files (one per device)."""
    lines = ["# Pipeline benchmark", "",
             "Generated by `python -m bench.pipeline` from the `results_*.json` files beside this one; "
             "times are milliseconds, **median / 95th percentile**.", ""]
    for res in results:
        m = res["machine"]
        dev = res["device"]
        usable = m.get("cpu_affinity")
        cores = f"{m['logical_cores']} logical cores" + (
            f" ({usable} usable)" if usable not in (None, m["logical_cores"]) else "")
        threads = res.get("torch_threads", m["torch_threads"])
        lines += [f"## {dev.upper()}: {m.get('gpu', '?') if dev == 'cuda' else m['cpu']}", "",
                  f"- CPU: {m['cpu']}, {cores}",
                  f"- torch {m['torch']} ({threads} threads, "
                  f"OMP_WAIT_POLICY {m.get('omp_wait_policy', 'unset')}),"
                  f" OpenCV {m['opencv']}, MediaPipe {m['mediapipe']}, Python {m['python']}, {m['platform']}",
                  f"- run: `{res['command']}` ({res['mode']}), {res['date']}",
                  f"- weights: {res['weights_note']}", ""]
        if res.get("note"):
            lines += [f"> {res['note']}", ""]
        if res.get("detectors"):
            lines += ["### Face detection: MediaPipe (the app's) against OpenCV's Haar cascade", "",
                      *_header("video", "frames", "MediaPipe ms", "faces found (mean, min-max)", "Haar ms",
                               "faces found (mean, min-max)")]
            for video, d in res["detectors"].items():
                mp, hr = d["mediapipe"], d["haar"]
                lines.append(_row(video, d["frames"], _ms(mp["ms"]),
                                  f"{mp['faces_mean']} ({mp['faces_min']}-{mp['faces_max']})", _ms(hr["ms"]),
                                  f"{hr['faces_mean']} ({hr['faces_min']}-{hr['faces_max']})"))
            params = ", ".join(f"{k}={v}" for k, v in HAAR_PARAMS.items())
            lines += ["", f"Haar: `detectMultiScale({params})` on the grayscale frame "
                      "(conversion included).", ""]
        if res.get("pipeline"):
            lines += ["### The whole pipeline, per stage", "",
                      "Every frame: decode, detect, crop, infer (one batch of all faces), draw the overlay. "
                      "`total` is the sum; FPS is end to end.", "",
                      *_header("video", "model", "input", "weights", *STAGES, "FPS")]
            for r in res["pipeline"]:
                lines.append(_row(r["video"], r["model"], r["input_size"], r["weights"],
                                  *(_ms(r[s]) for s in STAGES), f"**{r['fps']}**"))
            lines.append("")
        if res.get("inference"):
            lines += ["### Inference alone (`Classifier.predict`, preprocessing included)", "",
                      "With the card's test-time augmentation (*flip*: each face and its mirror in one "
                      "batch); where the card has it, the last two columns time the same model without.", "",
                      *_header("model", "input", "flip", "batch of 1 face", "batch of 8 faces", "per face at 8",
                               "1 face, no flip", "8 faces, no flip")]
            for r in res["inference"]:
                b8 = r["batch8"]
                per = f"{b8['median'] / 8:.1f}" if b8.get("median") is not None else "-"
                lines.append(_row(r["model"], r["input_size"], "yes" if r.get("flip_tta") else "no",
                                  _ms(r["batch1"]), _ms(b8), per, _ms(r.get("batch1_no_flip")),
                                  _ms(r.get("batch8_no_flip"))))
            lines.append("")
        if res.get("threads"):
            lines += ["### torch threads and OpenMP wait policy (whole pipeline, one face)", "",
                      "Detection, decoding and drawing share the cores with torch's threads. ACTIVE: "
                      "OpenMP threads spin between operations (libgomp's default); PASSIVE: they sleep.", "",
                      *_header("model", "input", "threads", "OMP_WAIT_POLICY", "infer", "total", "FPS")]
            for r in res["threads"]:
                fps = r.get("fps") if r.get("fps") is not None else r.get("error", "-")
                lines.append(_row(r["model"], r["input_size"], r["threads"], r.get("omp_wait_policy", "-"),
                                  _ms(r.get("infer")), _ms(r.get("total")), fps))
            lines.append("")
        if res.get("tracking"):
            untrained = ("Untrained weights give nearly the same probabilities for any face, so the "
                         "probability and label columns mean something only with trained weights."
                         if "untrained" in res.get("weights_note", "") else "")
            lines += ["### Detection skipping (`FramePipeline(..., detect_every=k)`)", "",
                      "Against detection on every frame, on the same frames (the faces drift all the "
                      "time, up to 3 px a frame). *Box error* is the spread (std, px) of the box around the "
                      "face's true position, known for the generated one-face video: at k=1 it is the "
                      "detector's own jitter. *Crop change* is the mean absolute difference of the 48x48 "
                      "crops (grey levels). "
                      + untrained, "",
                      *_header("video", "k", "detector runs", "detect ms", "box shift px vs k=1 (mean, max)",
                               "box error px", "crop change", "max prob change", "label changes")]
            for video, rows in res["tracking"].items():
                for r in rows:
                    lines.append(_row(video, r["detect_every"], f"{100 * r['detector_runs_share']:.0f}%",
                                      _ms(r["detect_ms"]),
                                      f"{r['box_shift_px_mean']}, {r['box_shift_px_max']}",
                                      r.get("error_vs_truth_px_std", "-"), r["crop_diff_mean"],
                                      r["prob_diff_max"], r["label_changes"]))
            lines.append("")
        if res.get("fer_predict"):
            fp = res["fer_predict"]
            lines += ["### `fer-predict VIDEO --model NAME --csv out.csv`, start-up included", "",
                      f"{fp['video']}: {fp['frames']} frames, 640x360. Targets: custom CNNs 100 FPS, "
                      "ResNets 25 FPS. *Start-up* is the wall time of the same command on a one-frame video "
                      "(imports, model and detector loading); *FPS after start-up* is the rate once running.",
                      "", *_header("model", "input", "weights", "wall s", "FPS", "target", "start-up s",
                                   "FPS after start-up")]
            for r in fp["runs"]:
                target = 100 if r["model"].endswith("_cnn") else 25
                ok = "-" if r["fps"] is None else ("met" if r["fps"] >= target else "missed")
                fps = r["fps"] if r["fps"] is not None else r.get("error", "failed")
                lines.append(_row(r["model"], r["input_size"], r["weights"], r["wall_s"], fps,
                                  f"{target} ({ok})", r.get("startup_s", "-"),
                                  r.get("fps_after_startup", "-")))
            lines.append("")
        if res.get("soak"):
            s = res["soak"]
            lines += ["### Soak: resident memory", "",
                      f"{s['model']} at {s['input_size']} ({s.get('weights', '?')} weights, "
                      f"`{s.get('command', 'python -m bench.pipeline --soak')}`, {s.get('date', '')}), "
                      f"{s['frames']} frames after "
                      f"{s['warmup_frames']} of "
                      f"warm-up (detect_every={s['detect_every']}): RSS {s['rss_after_warmup_mb']} MiB after "
                      f"warm-up, {s['rss_end_mb']} MiB at the end, growth **{s['growth_mb']} MiB** "
                      f"(target < {s['target_growth_mb']} MiB), {s['fps']} FPS.", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(out_dir: Path, results: dict) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"results_{results['device']}.json"
    path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    all_results = []
    for dev in ("cpu", "cuda"):
        p = out_dir / f"results_{dev}.json"
        if p.exists():
            with contextlib.suppress(ValueError, KeyError):
                all_results.append(json.loads(p.read_text(encoding="utf-8")))
    md = out_dir / "RESULTS.md"
    md.write_text(markdown(all_results), encoding="utf-8")
    return path, md


# ------------------------------------------------------------------ main

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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.report:
        out_dir = args.out_dir or BENCH_DIR
        paths = [out_dir / f"results_{d}.json" for d in ("cpu", "cuda")]
        found = [json.loads(p.read_text(encoding="utf-8")) for p in paths if p.exists()]
        if not found:
            raise SystemExit(f"no results_*.json in {out_dir}")
        (out_dir / "RESULTS.md").write_text(markdown(found), encoding="utf-8")
        print(f"wrote {out_dir / 'RESULTS.md'}")
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
    frames = args.frames or (20 if quick else 150)
    max_seconds = args.max_seconds or (3.0 if quick else 15.0)
    mode = "soak" if args.soak else "quick" if quick else "full"
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="fer_bench_")) if quick else BENCH_DIR)
    shown = list(sys.argv[1:] if argv is None else argv)
    if "--note" in shown:  # the note is printed on its own
        i = shown.index("--note")
        del shown[i:i + 2]
    command = " ".join(["python -m bench.pipeline", *(a for a in shown if not a.startswith("--note="))])

    with tempfile.TemporaryDirectory(prefix="fer_bench_") as tmp_name:
        tmp = Path(tmp_name)
        if args.video:
            videos = {p.name: p for p in args.video}
        else:
            n_video_frames = 30 if quick else 90
            videos = {"1 face": write_video(tmp / "one_face.mp4", 1, n_video_frames)}
            if args.faces > 1 and not args.soak:
                videos[f"{args.faces} faces"] = write_video(tmp / "faces.mp4", args.faces, n_video_frames)
        source = WeightsSource(tmp, args.weights_dir)

        def sizes_for(name: str) -> list[int]:
            if args.sizes:
                sizes = [int(s) for s in args.sizes.split(",")]
            else:
                sizes = list((QUICK_SIZES if quick else SIZES)[name])
            trained = source.trained_size(name)
            if trained and trained not in sizes:
                sizes.append(trained)
            return sorted(sizes)

        kinds_seen = set()
        detector = FaceDetector()
        try:
            if args.probe:  # one configuration, for thread_runs in a parent process
                name = models[0]
                clf, _ = source.classifier(name, sizes_for(name)[0], devices[0])
                r = run_pipeline(next(iter(videos.values())), detector, clf, frames, max_seconds)
                print("PROBE " + json.dumps(r), flush=True)
                return 0
            if args.soak:
                name = models[0]
                size = sizes_for(name)[0]
                clf, kind = source.classifier(name, size, devices[0])
                video = next(iter(videos.values()))
                print(f"soak: {name} at {size} ({kind} weights), {args.soak} frames on {devices[0]}…",
                      flush=True)
                result = soak(video, detector, clf, args.soak, args.detect_every)
                result.update(model=name, input_size=size, weights=kind, detect_every=args.detect_every,
                              device=devices[0], command=command, date=time.strftime("%Y-%m-%d"))
                print(json.dumps(result, indent=1))
                path = out_dir / f"results_{devices[0]}.json"
                if path.exists():
                    results = json.loads(path.read_text(encoding="utf-8"))
                else:
                    results = new_results(devices[0], devices, mode, command, "see soak")
                results["soak"] = result
                json_path, md_path = write_outputs(out_dir, results)
                print(f"wrote {json_path} and {md_path}")
                return 0

            for device in devices:
                results = new_results(device, devices, mode, command, "")
                results["note"] = args.note
                if device == "cpu":
                    first = {v: read_frames(p, 30 if quick else 90) for v, p in videos.items()}
                    print("detectors: MediaPipe against Haar…", flush=True)
                    results["detectors"] = {v: compare_detectors(f, detector) for v, f in first.items()}
                    for v, d in results["detectors"].items():
                        mp, hr = d["mediapipe"], d["haar"]
                        print(f"  {v}: mediapipe {_ms(mp['ms'])} ms, {mp['faces_mean']} faces; "
                              f"haar {_ms(hr['ms'])} ms, {hr['faces_mean']} faces", flush=True)

                print(f"pipeline on {device}…", flush=True)
                for name in models:
                    for size in sizes_for(name):
                        clf, kind = source.classifier(name, size, device)
                        kinds_seen.add(kind)
                        for video_name, video in videos.items():
                            r = run_pipeline(video, detector, clf, frames, max_seconds, args.detect_every)
                            r.update(video=video_name, model=name, input_size=size, weights=kind)
                            results["pipeline"].append(r)
                            print(f"  {video_name:>8} {name:>14} {size:>3}: detect {_ms(r['detect'])}  infer "
                                  f"{_ms(r['infer'])}  total {_ms(r['total'])}  {r['fps']} FPS", flush=True)
                        b1 = time_inference(clf, 1, 200 if not quick else 20, max_seconds / 2)
                        b8 = time_inference(clf, 8, 100 if not quick else 10, max_seconds / 2)
                        row = {"model": name, "input_size": size, "weights": kind, "flip_tta": clf.hflip_tta,
                               "batch1": b1, "batch8": b8}
                        if clf.hflip_tta:  # what the card's flip test-time augmentation costs
                            clf.hflip_tta = False
                            row["batch1_no_flip"] = time_inference(clf, 1, 200 if not quick else 20,
                                                                   max_seconds / 2)
                            row["batch8_no_flip"] = time_inference(clf, 8, 100 if not quick else 10,
                                                                   max_seconds / 2)
                            clf.hflip_tta = True
                        results["inference"].append(row)
                        print(f"  {'predict':>8} {name:>14} {size:>3}: batch 1 {_ms(b1)}  batch 8 {_ms(b8)}"
                              + (f"  (no flip: {_ms(row['batch1_no_flip'])}, {_ms(row['batch8_no_flip'])})"
                                 if "batch1_no_flip" in row else ""), flush=True)
                        del clf

                if device == "cpu":
                    one_face = next(iter(videos.values()))
                    results["threads"] = thread_runs(one_face, models, sizes_for, frames, max_seconds / 2,
                                                     quick,
                                                     source, detector, args.weights_dir)
                    # Detection skipping: time saved and results changed, on the same frames.
                    name = models[0]
                    clf, _ = source.classifier(name, sizes_for(name)[0], device)
                    results["tracking"] = {
                        v: tracking_effect(first[v], detector, clf, (1, 2, 3, 5),
                                           truth=None if args.video or v != "1 face"
                                           else [one_face_position(i) for i in range(len(first[v]))])
                        for v in first}
                    for v, rows in results["tracking"].items():
                        for r in rows:
                            print(f"  tracking {v} k={r['detect_every']}: detector on "
                                  f"{100 * r['detector_runs_share']:.0f}% of frames, box shift max "
                                  f"{r['box_shift_px_max']} px, prob change max {r['prob_diff_max']}",
                                  flush=True)
                    if not quick and not args.no_fer_predict and not args.video:
                        results["fer_predict"] = fer_predict_runs(source, models, sizes_for, tmp,
                                                                  args.threads,
                                                                  args.predict_frames)

                results["weights_note"] = weights_note(kinds_seen, args.weights_dir)
                json_path, md_path = write_outputs(out_dir, results)
                print(f"wrote {json_path} and {md_path}")
        finally:
            detector.close()
    return 0


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


def thread_runs(video: Path, models, sizes_for, frames: int, max_seconds: float, quick: bool, source,
                detector, weights_dir) -> list[dict]:
    """The pipeline with 1 and 2 torch threads, detection on the same cores.

    A full run starts a fresh process per setting, so that OpenMP's wait policy
    (``OMP_WAIT_POLICY``: ACTIVE threads spin between operations, PASSIVE ones
    sleep), which is read once at start-up, can be compared too. A quick run
    changes only the thread count, in this process.
    """
    import torch

    rows = []
    cores = os.cpu_count() or 1
    counts = sorted({1, min(2, cores), cores})
    for name in [m for m in models if m in ("baseline_cnn", "resnet50")]:
        size = sizes_for(name)[0]
        if quick:
            clf, _ = source.classifier(name, size, "cpu")
            before = torch.get_num_threads()
            for threads in counts:
                torch.set_num_threads(threads)
                r = run_pipeline(video, detector, clf, frames, max_seconds)
                rows.append({"model": name, "input_size": size, "threads": threads,
                             "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
                             "infer": r["infer"], "total": r["total"], "fps": r["fps"]})
            torch.set_num_threads(before)
        else:
            for threads in counts:
                for policy in ("ACTIVE", "PASSIVE"):
                    r = probe(video, name, size, threads, policy, frames, max_seconds, weights_dir)
                    rows.append({"model": name, "input_size": size, "threads": threads,
                                 "omp_wait_policy": policy,
                                 **{k: r.get(k) for k in ("infer", "total", "fps", "error")}})
        for r in rows[-len(counts) * (1 if quick else 2):]:
            print(f"  threads {r['threads']} ({r['omp_wait_policy']}) {name} {size}: "
                  f"infer {_ms(r['infer'])}  "
                  f"{r['fps']} FPS", flush=True)
    return rows


def probe(video: Path, model: str, size: int, threads: int, policy: str, frames: int, max_seconds: float,
          weights_dir) -> dict:
    """``run_pipeline`` in a fresh process with the given threads and OpenMP wait policy."""
    env = dict(os.environ, OMP_WAIT_POLICY=policy, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "bench.pipeline", "--probe", "--video", str(video), "--models", model,
           "--sizes", str(size), "--threads", str(threads), "--frames", str(frames),
           "--max-seconds", str(max_seconds), "--device", "cpu"]
    if weights_dir:
        cmd += ["--weights-dir", str(weights_dir)]
    proc = subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1][len("PROBE "):])


def fer_predict_runs(source: WeightsSource, models, sizes_for, tmp: Path, threads,
                     n: int = FER_PREDICT_FRAMES) -> dict:
    """fer-predict on a 640x360 one-face video, at the paper's sizes and at the shipped ones
    (a trained card's size, else the ``best`` training recipe's)."""
    from training.recipes import best_recipe

    video = write_video(tmp / "predict_one_face.mp4", 1, n)
    one_frame = write_video(tmp / "predict_one_frame.mp4", 1, 1)
    runs = []
    paper = {m: max(sizes_for(m)) for m in models}
    shipped = {m: source.trained_size(m) or best_recipe(m).input_size for m in models}
    for sizes in (paper, shipped):
        folder, kinds = source.folder_for_cli(sizes)
        def timed(model: str, input_size, weights: str) -> None:
            print(f"  fer-predict {model} at {input_size}…", flush=True)
            start = time_fer_predict(one_frame, folder, model, 1, tmp, threads)
            r = time_fer_predict(video, folder, model, n, tmp, threads)
            r.update(input_size=input_size, weights=weights, startup_s=start["wall_s"])
            if r["fps"] is not None and r["wall_s"] > start["wall_s"]:
                r["fps_after_startup"] = round((n - 1) / (r["wall_s"] - start["wall_s"]), 1)
            runs.append(r)
            print(f"    {r['wall_s']} s, {r['fps']} FPS (start-up {start['wall_s']} s)", flush=True)

        for m in models:
            timed(m, sizes[m], kinds[m])
        if sizes is shipped and len(models) >= 2:  # the ensemble of these models, at their shipped sizes
            timed("ensemble", "+".join(str(sizes[m]) for m in models),
                  "/".join(sorted({kinds[m] for m in models})))
    return {"video": "generated, one face", "frames": n, "runs": runs}


if __name__ == "__main__":
    sys.exit(main())
