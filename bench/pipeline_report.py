"""The pipeline benchmark's report: results files in, RESULTS.md out.

``write_outputs`` writes one device's ``results_<device>.json`` and rewrites
``RESULTS.md`` from every results file in the folder; ``markdown`` makes its
tables, one section per key of the results.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from bench.pipeline_measure import HAAR_PARAMS, STAGES
from bench.pipeline_setup import median_p95


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(*names) -> list[str]:
    return [_row(*names), _row(*["---"] * len(names))]


def _machine_lines(res: dict) -> list[str]:
    """The device, the machine and the run."""
    m = res["machine"]
    dev = res["device"]
    usable = m.get("cpu_affinity")
    cores = f"{m['logical_cores']} logical cores" + (
        f" ({usable} usable)" if usable not in (None, m["logical_cores"]) else "")
    threads = res.get("torch_threads", m["torch_threads"])
    lines = [f"## {dev.upper()}: {m.get('gpu', '?') if dev == 'cuda' else m['cpu']}", "",
             f"- CPU: {m['cpu']}, {cores}",
             f"- torch {m['torch']} ({threads} threads, "
             f"OMP_WAIT_POLICY {m.get('omp_wait_policy', 'unset')}),"
             f" OpenCV {m['opencv']}, MediaPipe {m['mediapipe']}, Python {m['python']}, {m['platform']}",
             f"- run: `{res['command']}` ({res['mode']}), {res['date']}",
             f"- weights: {res['weights_note']}", ""]
    if res.get("note"):
        lines += [f"> {res['note']}", ""]
    return lines


def _detector_lines(res: dict) -> list[str]:
    """MediaPipe against the Haar cascade."""
    lines = ["### Face detection: MediaPipe (the app's) against OpenCV's Haar cascade", "",
             *_header("video", "frames", "MediaPipe ms", "faces found (mean, min-max)", "Haar ms",
                      "faces found (mean, min-max)")]
    for video, d in res["detectors"].items():
        mp, hr = d["mediapipe"], d["haar"]
        lines.append(_row(video, d["frames"], median_p95(mp["ms"]),
                          f"{mp['faces_mean']} ({mp['faces_min']}-{mp['faces_max']})", median_p95(hr["ms"]),
                          f"{hr['faces_mean']} ({hr['faces_min']}-{hr['faces_max']})"))
    params = ", ".join(f"{k}={v}" for k, v in HAAR_PARAMS.items())
    lines += ["", f"Haar: `detectMultiScale({params})` on the grayscale frame "
              "(conversion included).", ""]
    return lines


def _table(title: str, intro: str, columns, rows) -> list[str]:
    """A section of one table: its title, a paragraph, then the table."""
    return [title, "", intro, "", *_header(*columns), *(_row(*row) for row in rows), ""]


def _pipeline_lines(res: dict) -> list[str]:
    """The whole pipeline, per stage."""
    return _table("### The whole pipeline, per stage",
                  "Every frame: decode, detect, crop, infer (one batch of all faces), draw the overlay. "
                  "`total` is the sum; FPS is end to end.",
                  ("video", "model", "input", "weights", *STAGES, "FPS"),
                  [(r["video"], r["model"], r["input_size"], r["weights"],
                    *(median_p95(r[s]) for s in STAGES), f"**{r['fps']}**") for r in res["pipeline"]])


def _inference_lines(res: dict) -> list[str]:
    """Inference alone, with and without the flip."""
    rows = []
    for r in res["inference"]:
        b8 = r["batch8"]
        per = f"{b8['median'] / 8:.1f}" if b8.get("median") is not None else "-"
        rows.append((r["model"], r["input_size"], "yes" if r.get("flip_tta") else "no",
                     median_p95(r["batch1"]), median_p95(b8), per, median_p95(r.get("batch1_no_flip")),
                     median_p95(r.get("batch8_no_flip"))))
    return _table("### Inference alone (`Classifier.predict`, preprocessing included)",
                  "With the card's test-time augmentation (*flip*: each face and its mirror in one "
                  "batch); where the card has it, the last two columns time the same model without.",
                  ("model", "input", "flip", "batch of 1 face", "batch of 8 faces", "per face at 8",
                   "1 face, no flip", "8 faces, no flip"), rows)


def _thread_lines(res: dict) -> list[str]:
    """torch threads and OpenMP wait policy."""
    rows = [(r["model"], r["input_size"], r["threads"], r.get("omp_wait_policy", "-"),
             median_p95(r.get("infer")), median_p95(r.get("total")),
             r.get("fps") if r.get("fps") is not None else r.get("error", "-")) for r in res["threads"]]
    return _table("### torch threads and OpenMP wait policy (whole pipeline, one face)",
                  "Detection, decoding and drawing share the cores with torch's threads. ACTIVE: "
                  "OpenMP threads spin between operations (libgomp's default); PASSIVE: they sleep.",
                  ("model", "input", "threads", "OMP_WAIT_POLICY", "infer", "total", "FPS"), rows)


def _tracking_lines(res: dict) -> list[str]:
    """Detection skipping against detection on every frame."""
    untrained = ("Untrained weights give nearly the same probabilities for any face, so the "
                 "probability and label columns mean something only with trained weights."
                 if "untrained" in res.get("weights_note", "") else "")
    rows = [(video, r["detect_every"], f"{100 * r['detector_runs_share']:.0f}%", median_p95(r["detect_ms"]),
             f"{r['box_shift_px_mean']}, {r['box_shift_px_max']}", r.get("error_vs_truth_px_std", "-"),
             r["crop_diff_mean"], r["prob_diff_max"], r["label_changes"])
            for video, video_rows in res["tracking"].items() for r in video_rows]
    return _table("### Detection skipping (`FramePipeline(..., detect_every=k)`)",
                  "Against detection on every frame, on the same frames (the faces drift all the "
                  "time, up to 3 px a frame). *Box error* is the spread (std, px) of the box around the "
                  "face's true position, known for the generated one-face video: at k=1 it is the "
                  "detector's own jitter. *Crop change* is the mean absolute difference of the 48x48 "
                  "crops (grey levels). " + untrained,
                  ("video", "k", "detector runs", "detect ms", "box shift px vs k=1 (mean, max)",
                   "box error px", "crop change", "max prob change", "label changes"), rows)


def _fer_predict_lines(res: dict) -> list[str]:
    """fer-predict end to end."""
    fp = res["fer_predict"]
    rows = []
    for r in fp["runs"]:
        target = 100 if r["model"].endswith("_cnn") else 25
        ok = "-" if r["fps"] is None else ("met" if r["fps"] >= target else "missed")
        fps = r["fps"] if r["fps"] is not None else r.get("error", "failed")
        rows.append((r["model"], r["input_size"], r["weights"], r["wall_s"], fps, f"{target} ({ok})",
                     r.get("startup_s", "-"), r.get("fps_after_startup", "-")))
    return _table("### `fer-predict VIDEO --model NAME --csv out.csv`, start-up included",
                  f"{fp['video']}: {fp['frames']} frames, 640x360. Targets: custom CNNs 100 FPS, "
                  "ResNets 25 FPS. *Start-up* is the wall time of the same command on a one-frame video "
                  "(imports, model and detector loading); *FPS after start-up* is the rate once running.",
                  ("model", "input", "weights", "wall s", "FPS", "target", "start-up s",
                   "FPS after start-up"), rows)


def _soak_lines(res: dict) -> list[str]:
    """Resident memory over a long run."""
    s = res["soak"]
    lines = ["### Soak: resident memory", "",
             f"{s['model']} at {s['input_size']} ({s.get('weights', '?')} weights, "
             f"`{s.get('command', 'python -m bench.pipeline --soak')}`, {s.get('date', '')}), "
             f"{s['frames']} frames after "
             f"{s['warmup_frames']} of "
             f"warm-up (detect_every={s['detect_every']}): RSS {s['rss_after_warmup_mb']} MiB after "
             f"warm-up, {s['rss_end_mb']} MiB at the end, growth **{s['growth_mb']} MiB** "
             f"(target < {s['target_growth_mb']} MiB), {s['fps']} FPS.", ""]
    return lines


# The tables in the order they appear, each under the results key it is made from.
SECTIONS = (("detectors", _detector_lines), ("pipeline", _pipeline_lines), ("inference", _inference_lines),
            ("threads", _thread_lines), ("tracking", _tracking_lines), ("fer_predict", _fer_predict_lines),
            ("soak", _soak_lines))


def markdown(results: list[dict]) -> str:
    """The markdown tables of one or more result files (one per device)."""
    lines = ["# Pipeline benchmark", "",
             "Generated by `python -m bench.pipeline` from the `results_*.json` files beside this one; "
             "times are milliseconds, **median / 95th percentile**.", ""]
    for res in results:
        lines += _machine_lines(res)
        for key, section in SECTIONS:
            if res.get(key):
                lines += section(res)
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


def rewrite_report(out_dir: Path) -> Path:
    """RESULTS.md rewritten from the results files in ``out_dir`` (``--report``)."""
    paths = [out_dir / f"results_{d}.json" for d in ("cpu", "cuda")]
    found = [json.loads(p.read_text(encoding="utf-8")) for p in paths if p.exists()]
    if not found:
        raise SystemExit(f"no results_*.json in {out_dir}")
    (out_dir / "RESULTS.md").write_text(markdown(found), encoding="utf-8")
    return out_dir / "RESULTS.md"
