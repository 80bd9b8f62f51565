"""The pipeline benchmark's measurements: each returns plain data for the results file.

The app's loop stage by stage (``run_pipeline``), MediaPipe against OpenCV's
Haar cascade, inference alone, torch threads and OpenMP's wait policy (each
setting in a fresh process: ``probe``), detection skipping against detection on
every frame, ``fer-predict`` end to end, and resident memory over a long run (``soak``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.pipeline_setup import WeightsSource, median_p95, rss_mb, stats, write_video

STAGES = ("decode", "detect", "crop", "infer", "overlay", "total")
HAAR_PARAMS = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (30, 30)}
WARMUP_FRAMES = 5
FER_PREDICT_FRAMES = 300  # 10 s of 30 fps video
ROOT = Path(__file__).resolve().parents[1]


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
                  f"infer {median_p95(r['infer'])}  "
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
