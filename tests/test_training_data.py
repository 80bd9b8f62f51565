"""Loaders of the three dataset formats, the compact copy, splits; all on faces made here."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_desktop.emotions import EMOTIONS
from training.data import (SPLITS, decode_residuals, encode_residuals, limit_splits, load_dataset, pack,
                           stratified_holdout)


def make_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth random faces with sharp edges (to exercise the predictor), labels, splits."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    labels = np.arange(n) % len(EMOTIONS)
    pixels = np.stack([(128 + 100 * np.sin(xx / (3 + k) + yy / (5 + k % 4))).astype(np.uint8) for k in labels])
    pixels[:, 10:20, 30:40] = rng.integers(0, 256, (n, 10, 10), dtype=np.uint8)
    split = np.array(["train", "train", "val", "test"] * (n // 4 + 1))[:n]
    return pixels, labels.astype(np.int64), split


def write_npz(path: Path, n: int = 56) -> Path:
    pixels, labels, split = make_faces(n)
    np.savez(path, pixels=pixels, labels=labels, split=split, class_names=np.array(EMOTIONS))
    return path


def test_npz_loader_splits_by_the_split_column(tmp_path):
    pixels, labels, split = make_faces(56)
    data = load_dataset(write_npz(tmp_path / "faces.npz"))
    assert data.sizes() == {s: int((split == s).sum()) for s in SPLITS}
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape[1:] == (48, 48)
    assert data.test_y.dtype == torch.int64
    assert torch.equal(data.val_x, torch.from_numpy(pixels[split == "val"]))
    assert torch.equal(data.val_y, torch.from_numpy(labels[split == "val"]))


def test_csv_loader_maps_usage_to_splits(tmp_path):
    pixels, labels, _ = make_faces(12)
    usage = ["Training"] * 6 + ["PublicTest"] * 3 + ["PrivateTest"] * 3
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for p, y, u in zip(pixels, labels, usage, strict=True):
            writer.writerow([int(y), " ".join(map(str, p.ravel())), u])
    data = load_dataset(path)
    assert data.sizes() == {"train": 6, "val": 3, "test": 3}
    assert torch.equal(data.test_x, torch.from_numpy(pixels[9:]))
    assert data.train_y.tolist() == labels[:6].tolist()


def test_folder_loader_holds_out_a_seeded_stratified_val(tmp_path):
    from PIL import Image

    pixels, labels, _ = make_faces(70)
    for i, (p, y) in enumerate(zip(pixels, labels, strict=True)):
        folder = tmp_path / ("test" if i >= 56 else "train") / EMOTIONS[y]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(p).save(folder / f"{i}.png")  # png: lossless, so pixels can be compared
    Image.fromarray(pixels[0]).resize((64, 64)).save(tmp_path / "train" / EMOTIONS[0] / "big.png")
    data = load_dataset(tmp_path, val_fraction=0.25, seed=3)
    assert data.sizes() == {"train": 57 - 14, "val": 14, "test": 14}
    assert sorted(torch.bincount(data.val_y, minlength=7).tolist()) == [2] * 7
    again = load_dataset(tmp_path, val_fraction=0.25, seed=3)
    assert torch.equal(data.val_x, again.val_x)
    assert data.train_x.shape[1:] == (48, 48)


def test_stratified_holdout_depends_on_seed_only():
    labels = np.arange(100) % 7
    a, b = stratified_holdout(labels, 0.2, 1), stratified_holdout(labels, 0.2, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, stratified_holdout(labels, 0.2, 2))


def test_residual_coding_round_trips_exactly():
    pixels, _, _ = make_faces(9)
    noise = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    for faces in (pixels, noise):
        assert np.array_equal(decode_residuals(encode_residuals(faces)), faces)


def test_packed_copy_is_smaller_and_loads_identically(tmp_path):
    src = write_npz(tmp_path / "faces.npz", n=56)
    dst = pack(src, tmp_path / "packed.npz")
    original, packed = load_dataset(src), load_dataset(dst)
    assert dst.stat().st_size < src.stat().st_size
    for split in SPLITS:
        assert torch.equal(original.split(split)[0], packed.split(split)[0])
        assert torch.equal(original.split(split)[1], packed.split(split)[1])


def test_limit_keeps_a_seeded_subset(tmp_path):
    data = load_dataset(write_npz(tmp_path / "faces.npz", n=80))
    small = limit_splits(data, 8, seed=0)
    assert small.sizes() == {"train": 8, "val": 2, "test": 2}
    assert torch.equal(small.train_x, limit_splits(data, 8, seed=0).train_x)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros((2, 48, 48), np.uint8), labels=np.array([0, 9]), split=np.array(["train"] * 2))
    with pytest.raises(ValueError, match="labels"):
        load_dataset(bad)


@pytest.mark.dataset
@pytest.mark.skipif(not os.environ.get("FER2013_NPZ"), reason="set FER2013_NPZ to the real fer2013.npz")
def test_real_dataset_has_the_official_splits():
    data = load_dataset(os.environ["FER2013_NPZ"])
    assert data.sizes() == {"train": 28709, "val": 3589, "test": 3589}
    assert torch.bincount(data.val_y, minlength=7).tolist() == [467, 56, 496, 895, 653, 415, 607]


FERPLUS_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown",
                   "NF"]


def test_ferplus_majority_drops_ties_contempt_unknown_not_a_face_and_missing_rows():
    from training.ferplus import ferplus_targets

    votes = np.array([
        [2, 0, 0, 1, 7, 0, 0, 0, 0, 0],  # anger wins -> angry
        [0, 8, 0, 0, 0, 0, 0, 2, 0, 0],  # happiness; contempt votes leave the distribution
        [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],  # tie -> dropped
        [1, 0, 0, 0, 0, 0, 0, 6, 3, 0],  # contempt -> dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 2, 8],  # not a face -> dropped
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # no FER+ row
        [255] * 10,  # no FER+ row, as the distributed file marks it
    ])
    keep, labels, soft = ferplus_targets(votes, FERPLUS_COLUMNS)
    assert keep.tolist() == [True, True, False, False, False, False, False]
    assert [EMOTIONS[k] for k in labels[keep]] == ["angry", "happy"]
    np.testing.assert_allclose(soft[0], np.array([7, 0, 0, 0, 1, 0, 2]) / 10, rtol=1e-6)  # EMOTIONS order
    np.testing.assert_allclose(soft[1], np.eye(7)[EMOTIONS.index("happy")])


def test_ferplus_labels_load_from_an_npz_with_votes_and_not_from_one_without(tmp_path):
    rng = np.random.default_rng(0)
    n = 12
    votes = np.zeros((n, 10), np.uint8)
    votes[np.arange(n), np.arange(n) % 7] = 10  # a clear majority for one emotion column each
    votes[0] = [0, 0, 0, 0, 0, 0, 0, 10, 0, 0]  # contempt: dropped
    path = tmp_path / "votes.npz"
    np.savez(path, pixels=rng.integers(0, 256, (n, 48, 48)).astype(np.uint8), labels=np.zeros(n, int),
             split=np.array(["train"] * 8 + ["val"] * 2 + ["test"] * 2), ferplus_votes=votes,
             ferplus_columns=np.array(FERPLUS_COLUMNS))
    hard = load_dataset(path, labels="ferplus")
    assert hard.sizes() == {"train": 7, "val": 2, "test": 2} and hard.train_soft is None
    assert hard.labels == "ferplus" and hard.train_y.tolist()[0] == EMOTIONS.index("happy")  # column 1
    soft = load_dataset(path, labels="ferplus-soft")
    assert soft.train_soft.shape == (7, 7) and torch.equal(soft.train_soft.argmax(1), soft.train_y)
    assert limit_splits(soft, 4).train_soft.shape == (4, 7)
    from training.data import write_npy_folder  # the memory-mapped copy keeps the votes

    mapped = load_dataset(write_npy_folder(path, tmp_path / "npy"), labels="ferplus-soft")
    assert mapped.sizes() == soft.sizes() and torch.equal(mapped.train_soft, soft.train_soft)
    assert torch.equal(mapped.train_x.gather(np.arange(7)), soft.train_x)
    with pytest.raises(ValueError, match="no FER\\+ votes"):
        load_dataset(write_npz(tmp_path / "plain.npz"), labels="ferplus")


@pytest.mark.dataset
@pytest.mark.skipif(not os.environ.get("FER2013_NPZ"), reason="set FER2013_NPZ to the real fer2013.npz")
def test_real_ferplus_votes_give_majority_labels_for_most_faces():
    data = load_dataset(os.environ["FER2013_NPZ"], labels="ferplus-soft")
    sizes = data.sizes()
    # Ties, contempt, unknown, not-a-face and the 177 faces without a FER+ row are dropped.
    assert 0.85 * 28709 < sizes["train"] < 28709 and 0.85 * 3589 < sizes["test"] < 3589
    assert torch.allclose(data.train_soft.sum(1), torch.ones(sizes["train"]))
    assert torch.equal(data.train_soft.argmax(1), data.train_y)  # the majority is the distribution's mode
    assert (torch.bincount(data.train_y, minlength=7) > 100).all()
