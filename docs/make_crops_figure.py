"""Choose the face-crop margin so that the app's crops are framed like FER-2013's.

    python docs/make_crops_figure.py fer2013.npz [--out docs/crops.png]

Writes ``docs/crops.png``: the mean face of FER-2013's training split (an average
of 28,709 faces, not an image of the dataset) beside the app's crops of the test
photo at several margins, and prints the numbers behind the choice:

1. FER-2013 framing, measured with the app's own detector: BlazeFace is run on a
   sample of FER-2013 training faces (padded and upscaled so that the box is not
   cut by the 48x48 border). Since a FER-2013 face *is* the crop, the margin that
   turns a detector box into that crop is ``(48 / box_side - 1) / 2``, and the
   upward shift is ``(box_centre_y - 24) / box_h``. Their medians are the answer.
2. Landmark rows: where the eyes and the mouth sit (fraction of the crop's
   height) in FER-2013 and in the app's crops at each margin.
3. Correlation of the app's crop with the FER-2013 mean face.

No individual FER-2013 face is written anywhere.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_desktop.detection import MODEL_PATH  # noqa: E402
from fer_desktop.preprocessing import DEFAULT_MARGIN, DEFAULT_SHIFT_UP, FACE_SIZE, Box, crop_face, crop_square  # noqa: E402

MARGINS = (0.0, 0.1, 0.2, 0.3)
TEST_FACE = ROOT / "tests" / "data" / "astronaut.jpg"


class KeypointDetector:
    """BlazeFace (the bundled model) returning the best box and its six keypoints in pixels."""

    def __init__(self) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self.mp = mp
        self.det = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(MODEL_PATH)),
            running_mode=vision.RunningMode.IMAGE, min_detection_confidence=0.5))

    def __call__(self, gray: np.ndarray):
        rgb = np.ascontiguousarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB))
        result = self.det.detect(self.mp.Image(image_format=self.mp.ImageFormat.SRGB, data=rgb))
        if not result.detections:
            return None
        d = max(result.detections, key=lambda d: d.categories[0].score)
        bb = d.bounding_box
        h, w = gray.shape
        # keypoints: right eye, left eye, nose tip, mouth centre, right ear, left ear
        kp = np.array([(k.x * w, k.y * h) for k in d.keypoints])
        return np.array([bb.origin_x, bb.origin_y, bb.width, bb.height], float), kp

    def close(self) -> None:
        self.det.close()


def fer_statistics(pixels: np.ndarray, detect: KeypointDetector, sample: int, seed: int = 0) -> dict:
    pad, scale = 24, 4
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(pixels), min(sample, len(pixels)), replace=False)
    margins, shifts, eyes, mouths, eye_dists = [], [], [], [], []
    for i in idx:
        big = cv2.copyMakeBorder(pixels[i], pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        big = cv2.resize(big, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        found = detect(big)
        if found is None:
            continue
        box, kp = found
        box, kp = box / scale - [pad, pad, 0, 0], kp / scale - pad
        x, y, w, h = box
        margins.append((FACE_SIZE / max(w, h) - 1) / 2)
        shifts.append((y + h / 2 - FACE_SIZE / 2) / h)
        eyes.append(kp[:2, 1].mean() / FACE_SIZE)
        mouths.append(kp[3, 1] / FACE_SIZE)
        eye_dists.append(abs(kp[0, 0] - kp[1, 0]) / FACE_SIZE)
    q = lambda v: np.percentile(v, [25, 50, 75])  # noqa: E731
    return {"n": len(idx), "found": len(margins), "margin": q(margins), "shift_up": q(shifts),
            "eye_row": q(eyes), "mouth_row": q(mouths), "eye_dist": q(eye_dists)}


def app_crops(image: np.ndarray, detect: KeypointDetector, shift_up: float) -> list[dict]:
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    box, kp = detect(gray)
    b = Box(*[int(round(v)) for v in box])
    out = []
    for m in MARGINS:
        x0, y0, x1, y1 = crop_square(b, image.shape, m, shift_up)
        side = x1 - x0
        out.append({"margin": m, "crop": crop_face(image, b, m, shift_up),
                    "eye_row": (kp[:2, 1].mean() - y0) / side, "mouth_row": (kp[3, 1] - y0) / side,
                    "eye_dist": abs(kp[0, 0] - kp[1, 0]) / side})
    return out


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("npz", help="fer2013.npz (pixels, split)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "crops.png"))
    ap.add_argument("--sample", type=int, default=2000, help="FER-2013 faces to run the detector on")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.load(args.npz)
    train = data["pixels"][data["split"] == "train"]
    mean_face = train.mean(axis=0)
    detect = KeypointDetector()
    try:
        stats = fer_statistics(train, detect, args.sample)
        face = cv2.imread(str(TEST_FACE), cv2.IMREAD_COLOR)
        crops = app_crops(face, detect, DEFAULT_SHIFT_UP)
        crops_flip = app_crops(cv2.flip(face, 1), detect, DEFAULT_SHIFT_UP)
    finally:
        detect.close()
    for c, cf in zip(crops, crops_flip):
        c["corr"] = correlation((c["crop"].astype(float) + cf["crop"]) / 2, mean_face)

    fmt = lambda q: f"{q[1]:.3f} (IQR {q[0]:.3f}-{q[2]:.3f})"  # noqa: E731
    print(f"FER-2013 train: {len(train)} faces; BlazeFace found {stats['found']} of {stats['n']} sampled")
    for key in ("margin", "shift_up", "eye_row", "mouth_row", "eye_dist"):
        print(f"  FER-2013 {key:9s} {fmt(stats[key])}")
    print(f"app crops of {TEST_FACE.name} (shift_up {DEFAULT_SHIFT_UP}):")
    for c in crops:
        print(f"  margin {c['margin']:.1f}: eye row {c['eye_row']:.3f}, mouth row {c['mouth_row']:.3f}, "
              f"eye distance {c['eye_dist']:.3f}, correlation with mean face {c['corr']:.3f}")

    eye_fer, mouth_fer = stats["eye_row"][1], stats["mouth_row"][1]
    fig, axes = plt.subplots(1, 1 + len(crops), figsize=(2.3 * (1 + len(crops)), 3.3))
    stretched = (mean_face - mean_face.min()) / (np.ptp(mean_face) or 1.0)
    panels = [("FER-2013 mean face\n(train, 28,709, stretched)", stretched, None)]
    for c in crops:
        chosen = " (chosen)" if abs(c["margin"] - DEFAULT_MARGIN) < 1e-9 else ""
        panels.append((f"app crop, margin {c['margin']:.1f}{chosen}\neyes {c['eye_row']:.2f} "
                       f"mouth {c['mouth_row']:.2f} r={c['corr']:.2f}", c["crop"], c))
    for ax, (title, img, c) in zip(axes, panels):
        ax.imshow(img, cmap="gray", extent=(0, 1, 1, 0))
        for row, color in ((eye_fer, "tab:cyan"), (mouth_fer, "tab:orange")):
            ax.axhline(row, color=color, ls="--", lw=1)
        if c is not None:
            ax.plot([0.5, 0.5], [c["eye_row"], c["mouth_row"]], "o", color="tab:red", ms=4)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Dashed: FER-2013's median eye row ({eye_fer:.2f}) and mouth row ({mouth_fer:.2f}), "
                 f"from BlazeFace on {stats['found']} training faces; red: the app crop's own. "
                 f"FER-2013 framing = box margin {stats['margin'][1]:.2f}, shift up {stats['shift_up'][1]:.2f}",
                 fontsize=7, wrap=True)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
