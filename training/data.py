"""FER-2013 in memory: 48x48 uint8 faces and int64 labels for train, val and test.

Three source formats load into the same ``FaceSplits``:

- ``.npz`` with ``pixels [N,48,48] uint8``, ``labels [N]`` and ``split [N]``
  (``train``/``val``/``test``), or the compact copy ``pack`` writes;
- the original ``fer2013.csv`` (``emotion,pixels,Usage``; Usage ``Training`` /
  ``PublicTest`` / ``PrivateTest``);
- a folder ``train/<class>/*.jpg`` + ``test/<class>/*.jpg`` (the Kaggle image
  layout), from which a seeded, stratified share of train is held out as val.

Validation is FER-2013's PublicTest and test its PrivateTest: model selection
uses val only, and the reported accuracy is test's.

``labels="ferplus"`` or ``"ferplus-soft"`` takes the FER+ relabelling from an
``.npz`` that carries its votes (``ferplus_votes``, ``ferplus_columns``): see
``training.ferplus`` for which faces are kept.

A folder of ``.npy`` files (``pixels.npy``, ``labels.npy``, ``split.npy``, and
FER+'s votes if known), written by ``python -m training data pack-npy SRC DIR``,
is memory-mapped: its training faces are streamed (``training.streaming``),
never read into memory as a whole. That is the format for datasets larger
than memory.

``python -m training data pack SRC DST`` writes the compact copy: pixels as
residuals of the JPEG-LS (LOCO-I) predictor in an LZMA-compressed zip, about
two thirds of the raw size; ``load_dataset`` reads it like any ``.npz``.
"""

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_desktop.emotions import EMOTIONS
from training.ferplus import LABEL_SETS, ferplus_targets
from training.streaming import FACE, StreamedFaces, read_face_file

SPLITS = ("train", "val", "test")
CSV_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class FaceSplits:
    """uint8 faces ``[N,48,48]`` and int64 labels ``[N]`` per split, on the CPU.

    ``train_x`` is ``StreamedFaces`` (training.streaming) for memory-mapped data.
    """

    train_x: "torch.Tensor | StreamedFaces"
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str = ""
    labels: str = "fer2013"  # which label set: training.ferplus.LABEL_SETS
    train_soft: torch.Tensor | None = None  # float32 [N, 7] targets (ferplus-soft), else None

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def sizes(self) -> dict[str, int]:
        return {name: len(self.split(name)[1]) for name in SPLITS}


def _from_arrays(pixels: np.ndarray, labels: np.ndarray, split: np.ndarray, source: str,
                 soft: np.ndarray | None = None, label_set: str = "fer2013") -> FaceSplits:
    if pixels.ndim != 3 or pixels.shape[1:] != (FACE, FACE) or pixels.dtype != np.uint8:
        raise ValueError(f"{source}: pixels must be uint8 [N,{FACE},{FACE}], got {pixels.dtype} {pixels.shape}")
    labels = np.asarray(labels).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(EMOTIONS)):
        raise ValueError(f"{source}: labels must lie in 0..{len(EMOTIONS) - 1}")
    split = np.asarray(split).astype(str)
    unknown = set(np.unique(split)) - set(SPLITS)
    if unknown:
        raise ValueError(f"{source}: unknown split values {sorted(unknown)}")
    parts = {}
    for name in SPLITS:
        keep = split == name
        parts[f"{name}_x"] = torch.from_numpy(np.ascontiguousarray(pixels[keep]))
        parts[f"{name}_y"] = torch.from_numpy(labels[keep])
    train_soft = torch.from_numpy(np.ascontiguousarray(soft[split == "train"])) if soft is not None else None
    return FaceSplits(**parts, source=source, labels=label_set, train_soft=train_soft)


# --- compact format: LOCO-I residuals ------------------------------------------------------------

def _med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """JPEG-LS median edge detector: predicts a pixel from left ``a``, up ``b``, up-left ``c``."""
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))


def _neighbours(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.zeros_like(p)
    b = np.zeros_like(p)
    c = np.zeros_like(p)
    a[:, :, 1:] = p[:, :, :-1]
    b[:, 1:, :] = p[:, :-1, :]
    c[:, 1:, 1:] = p[:, :-1, :-1]
    a[:, :, 0] = b[:, :, 0]  # first column: predict from above
    return a, b, c


def encode_residuals(pixels: np.ndarray) -> np.ndarray:
    """uint8 faces -> uint8 prediction residuals (mod 256); small values compress well."""
    p = pixels.astype(np.int16)
    return ((p - _med(*_neighbours(p))) % 256).astype(np.uint8)


def decode_residuals(residuals: np.ndarray) -> np.ndarray:
    """Inverse of ``encode_residuals``: rebuilds pixels one position at a time, all faces at once."""
    n, h, w = residuals.shape
    r = residuals.astype(np.int16)
    p = np.zeros((n, h, w), np.int16)
    zero = np.zeros(n, np.int16)
    for i in range(h):
        for j in range(w):
            b = p[:, i - 1, j] if i else zero
            c = p[:, i - 1, j - 1] if i and j else zero
            a = p[:, i, j - 1] if j else b
            p[:, i, j] = (_med(a, b, c) + r[:, i, j]) % 256
    return p.astype(np.uint8)


def pack(src: str | Path, dst: str | Path) -> Path:
    """Write the compact copy of any supported source: residuals, labels, split codes only."""
    data = load_dataset(src)
    xs = [data.split(s)[0].numpy() for s in SPLITS]
    ys = [data.split(s)[1].numpy() for s in SPLITS]
    arrays = {
        "pixels_loco": encode_residuals(np.concatenate(xs)),
        "labels": np.concatenate(ys).astype(np.uint8),
        "split_code": np.concatenate([np.full(len(y), i, np.uint8) for i, y in enumerate(ys)]),
    }
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    # np.load reads LZMA zip members like deflated ones, so the copy stays an ordinary .npz.
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
    return dst


# --- loaders ---------------------------------------------------------------------------------------

def load_npz(path: str | Path, labels: str = "fer2013") -> FaceSplits:
    with np.load(path, allow_pickle=False) as z:
        if "pixels_loco" in z.files:
            pixels = decode_residuals(z["pixels_loco"])
            split = np.asarray(SPLITS)[z["split_code"]]
        else:
            pixels, split = z["pixels"], z["split"]
        if labels == "fer2013":
            return _from_arrays(pixels, z["labels"], split, str(path))
        if "ferplus_votes" not in z.files:
            raise ValueError(f"{path}: has no FER+ votes (ferplus_votes); use --labels fer2013")
        keep, majority, soft = ferplus_targets(z["ferplus_votes"], z["ferplus_columns"])
        return _from_arrays(pixels[keep], majority[keep], np.asarray(split)[keep], str(path),
                            soft[keep] if labels == "ferplus-soft" else None, labels)


NPY_PIXELS = "pixels.npy"
NPY_ARRAYS = ("labels", "split", "ferplus_votes", "ferplus_columns")


def load_npy_folder(path: str | Path, labels: str = "fer2013") -> FaceSplits:
    """A ``pack-npy`` folder: training faces memory-mapped and streamed, val and test in memory."""
    root = Path(path)
    pixels = np.load(root / NPY_PIXELS, mmap_mode="r")
    arrays = {name: np.load(root / f"{name}.npy") for name in NPY_ARRAYS if (root / f"{name}.npy").is_file()}
    if pixels.ndim != 3 or pixels.shape[1:] != (FACE, FACE) or pixels.dtype != np.uint8:
        raise ValueError(f"{root}: pixels must be uint8 [N,{FACE},{FACE}], got {pixels.dtype} {pixels.shape}")
    split, target = arrays["split"].astype(str), arrays["labels"].astype(np.int64)
    keep, soft = np.ones(len(split), bool), None
    if labels != "fer2013":
        if "ferplus_votes" not in arrays:
            raise ValueError(f"{root}: has no FER+ votes (ferplus_votes.npy); use --labels fer2013")
        keep, target, soft = ferplus_targets(arrays["ferplus_votes"], arrays["ferplus_columns"])
        soft = soft if labels == "ferplus-soft" else None
    parts = {}
    for name in SPLITS:
        rows = np.flatnonzero((split == name) & keep)
        parts[f"{name}_y"] = torch.from_numpy(target[rows])
        parts[f"{name}_x"] = (StreamedFaces(path=root / NPY_PIXELS, rows=rows) if name == "train"
                              else torch.from_numpy(np.ascontiguousarray(pixels[rows])))
        if name == "train" and soft is not None:
            parts["train_soft"] = torch.from_numpy(soft[rows])
    return FaceSplits(**parts, source=str(root), labels=labels)


def write_npy_folder(src: str | Path, dst: str | Path) -> Path:
    """Write ``src`` (any format ``load_dataset`` reads) as a folder of ``.npy`` files for memory-mapping."""
    src, dst = Path(src), Path(dst)
    arrays = {}
    if src.suffix == ".npz":
        with np.load(src, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("ferplus_votes", "ferplus_columns") if k in z.files}
    data = load_dataset(src)
    dst.mkdir(parents=True, exist_ok=True)
    if arrays:  # the votes are per row of the source: keep its row order
        with np.load(src, allow_pickle=False) as z:
            pixels = decode_residuals(z["pixels_loco"]) if "pixels_loco" in z.files else z["pixels"]
            split = np.asarray(SPLITS)[z["split_code"]] if "split_code" in z.files else z["split"]
            arrays.update(labels=z["labels"].astype(np.int64), split=np.asarray(split).astype(str))
    else:
        pixels = np.concatenate([data.split(name)[0].numpy() for name in SPLITS])
        arrays.update(labels=np.concatenate([data.split(name)[1].numpy() for name in SPLITS]),
                      split=np.concatenate([np.full(data.sizes()[name], name) for name in SPLITS]))
    np.save(dst / NPY_PIXELS, np.ascontiguousarray(pixels))
    for name, value in arrays.items():
        np.save(dst / f"{name}.npy", value)
    return dst


def load_csv(path: str | Path) -> FaceSplits:
    pixels, labels, split = [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            pixels.append(np.asarray(row["pixels"].split(), dtype=np.uint8).reshape(FACE, FACE))
            labels.append(int(row["emotion"]))
            split.append(CSV_USAGE[row["Usage"]])
    return _from_arrays(np.stack(pixels), np.asarray(labels), np.asarray(split), str(path))


def _class_files(root: Path) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for label, name in enumerate(EMOTIONS):
        for file in sorted((root / name).glob("*")):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append(file)
                labels.append(label)
    if not files:
        raise ValueError(f"{root}: no images in {'/'.join(EMOTIONS)} subfolders")
    return files, np.asarray(labels, np.int64)


def _read_files(files: list[Path]) -> np.ndarray:
    return np.stack([read_face_file(f) for f in files])


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask choosing ``fraction`` of each class, the same for the same seed."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        take = int(round(len(idx) * fraction))
        mask[rng.permutation(idx)[:take]] = True
    return mask


# Image folders with more training images than this are not decoded up front: their
# training faces are decoded as batches need them (training.streaming), by workers.
STREAM_FILES_ABOVE = 200_000


def load_folder(path: str | Path, val_fraction: float = 0.1, seed: int = 0) -> FaceSplits:
    root = Path(path)
    train_files, train_y = _class_files(root / "train")
    test_files, test_y = _class_files(root / "test")
    val = stratified_holdout(train_y, val_fraction, seed)
    if len(train_files) - val.sum() > STREAM_FILES_ABOVE:
        rows = np.flatnonzero(~val)
        return FaceSplits(
            train_x=StreamedFaces(files=train_files, rows=rows), train_y=torch.from_numpy(train_y[rows]),
            val_x=torch.from_numpy(_read_files([train_files[i] for i in np.flatnonzero(val)])),
            val_y=torch.from_numpy(train_y[val]), test_x=torch.from_numpy(_read_files(test_files)),
            test_y=torch.from_numpy(test_y), source=str(path))
    pixels = _read_files(train_files + test_files)
    labels = np.concatenate([train_y, test_y])
    split = np.concatenate([np.where(val, "val", "train"), np.full(len(test_y), "test")])
    return _from_arrays(pixels, labels, split, str(path))


def load_dataset(path: str | Path, val_fraction: float = 0.1, seed: int = 0, labels: str = "fer2013") -> FaceSplits:
    """Load any supported format by its shape on disk (``val_fraction``/``seed``: folders only).

    ``labels``: ``fer2013``, or ``ferplus``/``ferplus-soft`` from an ``.npz`` with FER+ votes.
    """
    if labels not in LABEL_SETS:
        raise ValueError(f"unknown labels {labels!r}; choose one of {', '.join(LABEL_SETS)}")
    path = Path(path)
    if (path / NPY_PIXELS).is_file():
        return load_npy_folder(path, labels)
    if labels != "fer2013" and (path.is_dir() or path.suffix != ".npz"):
        raise ValueError(f"{path}: FER+ labels come from an .npz (or a pack-npy folder) with FER+ votes")
    if path.is_dir():
        return load_folder(path, val_fraction, seed)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dataset file or folder")
    if path.suffix == ".npz":
        return load_npz(path, labels)
    if path.suffix == ".csv":
        return load_csv(path)
    raise ValueError(f"{path}: expected a .npz, a .csv or an image folder")


def limit_splits(data: FaceSplits, limit: int, seed: int = 0) -> FaceSplits:
    """At most ``limit`` training faces (and limit//4 for val and test), chosen by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    parts = {}
    for name, n in (("train", limit), ("val", max(1, limit // 4)), ("test", max(1, limit // 4))):
        x, y = data.split(name)
        keep = torch.randperm(len(y), generator=g)[:n].sort().values
        parts[f"{name}_x"], parts[f"{name}_y"] = x[keep], y[keep]
        if name == "train" and data.train_soft is not None:
            parts["train_soft"] = data.train_soft[keep]
    return FaceSplits(**parts, source=data.source, labels=data.labels)


if __name__ == "__main__":  # the command's older name, quoted in documents (run, not imported: no circle)
    import runpy

    runpy.run_module("training.commands.data", run_name="__main__")
