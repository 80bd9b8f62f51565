"""The public Python API: ``from fer_desktop import EMOTIONS, load_classifier``."""

import subprocess
import sys

import numpy as np
import pytest

MODELS = ["baseline_cnn", "attention_cnn", "resnet50", "resnet50_cbam"]


@pytest.mark.parametrize("name", MODELS)
def test_emotions_are_in_the_order_the_shipped_weights_were_trained_in(name):
    """A reordered EMOTIONS would put every label on the wrong bar: the shipped cards refuse it."""
    from fer_desktop import EMOTIONS
    import json

    from fer_desktop.weights import find_weights

    path = find_weights(name)
    if path is None:
        pytest.skip(f"no shipped {name} weights")
    assert tuple(json.loads(path.with_suffix(".json").read_text())["classes"]) == EMOTIONS


@pytest.mark.dataset
def test_emotions_are_the_datasets_label_order():
    import os

    from fer_desktop import EMOTIONS

    path = os.environ.get("FER2013_NPZ")
    if not path:
        pytest.skip("FER2013_NPZ not set")
    with np.load(path) as data:
        assert tuple(str(name).lower() for name in data["class_names"]) == EMOTIONS


@pytest.fixture(scope="module")
def classifiers(tiny_weights_dir):
    from fer_desktop import load_classifier

    return {name: load_classifier(name, device="cpu", weights_dir=tiny_weights_dir) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_predict_probabilities(classifiers, name):
    clf = classifiers[name]
    faces = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    probs = clf.predict(faces)
    assert probs.shape == (2, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    # A single face [48, 48] is a batch of one; a batch gives the same per-face answers.
    np.testing.assert_allclose(clf.predict(faces[1]), probs[1:2], atol=1e-5)


def test_predict_accepts_a_torch_tensor(classifiers):
    import torch

    faces = np.random.default_rng(1).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    clf = classifiers["baseline_cnn"]
    np.testing.assert_allclose(clf.predict(torch.from_numpy(faces)), clf.predict(faces), atol=1e-6)


def test_empty_batch(classifiers):
    probs = classifiers["resnet50_cbam"].predict(np.zeros((0, 48, 48), np.uint8))
    assert probs.shape == (0, 7) and probs.dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 64, 64), (48,), (2, 48, 48, 3), (1, 48, 47)])
def test_bad_shapes(classifiers, shape):
    with pytest.raises(ValueError, match="48, 48"):
        classifiers["baseline_cnn"].predict(np.zeros(shape, np.uint8))


def test_non_uint8_faces_are_refused(classifiers):
    with pytest.raises((TypeError, ValueError)):
        classifiers["baseline_cnn"].predict(np.zeros((1, 48, 48), np.float32))


def test_classifier_metadata(classifiers):
    clf = classifiers["attention_cnn"]
    assert clf.name == "attention_cnn" and clf.device.type == "cpu" and clf.input_size == 48
    assert clf.title == "Attention CNN"


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_is_light_and_core_has_no_qt():
    # ``import fer_desktop`` alone imports neither torch nor Qt.
    assert _run("import sys, fer_desktop; fer_desktop.EMOTIONS; "
                "print(sorted(m for m in ('torch', 'PySide6', 'cv2', 'mediapipe') if m in sys.modules))") == "[]"
    # The core modules (and the command line) never import PySide6, nor torch (the CPU runs ONNX Runtime).
    assert _run("import sys\n"
                "import fer_desktop.preprocessing, fer_desktop.detection, fer_desktop.classifier\n"
                "import fer_desktop.pipeline, fer_desktop.predict_cli, fer_desktop.image_io, fer_desktop.overlay\n"
                "from fer_desktop import load_classifier\n"
                "print('torch' in sys.modules, [m for m in sys.modules if m.startswith('PySide6')])") \
        == "False []"


def test_exactly_one_opencv_distribution():
    """mediapipe needs opencv-contrib-python; a second cv2 wheel beside it would shadow files."""
    from importlib import metadata

    names = {"opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless"}
    installed = sorted({d.metadata["Name"].lower() for d in metadata.distributions()} & names)
    assert installed == ["opencv-contrib-python"]


@pytest.mark.parametrize("name", ["baseline_cnn", "resnet50_cbam"])
def test_flip_tta_in_one_batch_equals_two_passes(classifiers, name):
    import torch

    from fer_desktop.preprocessing import faces_to_tensor

    clf = classifiers[name]
    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    clf.hflip_tta = True
    try:
        batched = clf.logits(faces)
    finally:
        clf.hflip_tta = False
    x = faces_to_tensor(faces, clf.input_size, clf.mean, clf.std).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        separate = (clf.model(x) + clf.model(x.flip(-1))) / 2
    assert torch.allclose(batched, separate, atol=1e-4)
    # and the mirror matters: without it the logits differ
    assert not torch.equal(batched, clf.logits(faces))


def test_the_ensemble_averages_every_trained_model(cnn_weights_dir, tmp_path, no_shipped_weights):
    import json
    import shutil

    from fer_desktop import load_classifier
    from fer_desktop.explain import explain, has_attention
    from fer_desktop.weights import WeightsNotFoundError

    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    members = [load_classifier(n, device="cpu", weights_dir=cnn_weights_dir) for n in ("baseline_cnn",
                                                                                       "attention_cnn")]
    ensemble = load_classifier("ensemble", device="cpu", weights_dir=cnn_weights_dir)
    assert ensemble.name == "ensemble" and [m.name for m in ensemble.members] == ["baseline_cnn", "attention_cnn"]
    np.testing.assert_allclose(ensemble.predict(faces), (members[0].predict(faces) + members[1].predict(faces)) / 2,
                               atol=1e-6)
    maps = explain(ensemble, faces, "gradcam")
    assert maps.shape == (3, 48, 48) and maps.min() >= 0 and maps.max() <= 1 and has_attention(ensemble)

    # Weights chosen on PublicTest (training.ensemble) apply while they name the same members.
    folder = tmp_path / "weights"
    shutil.copytree(cnn_weights_dir, folder)
    card = {"weights": {"baseline_cnn": 3, "attention_cnn": 1}, "metrics": {"test_accuracy": 0.7},
            "members": {"baseline_cnn": {"card_val_accuracy": None}, "attention_cnn": {"card_val_accuracy": None}}}
    (folder / "ensemble.json").write_text(json.dumps(card))
    weighted = load_classifier("ensemble", device="cpu", weights_dir=folder)
    np.testing.assert_allclose(weighted.predict(faces), 0.75 * members[0].predict(faces)
                               + 0.25 * members[1].predict(faces), atol=1e-6)
    assert weighted.card["metrics"]["test_accuracy"] == 0.7
    # Measured with other weights of a member (its card says another accuracy): equal weights, no figure.
    card["members"]["attention_cnn"]["card_val_accuracy"] = 0.5
    (folder / "ensemble.json").write_text(json.dumps(card))
    stale = load_classifier("ensemble", device="cpu", weights_dir=folder)
    np.testing.assert_allclose(stale.predict(faces), ensemble.predict(faces), atol=1e-6)
    assert "metrics" not in stale.card and "measured for other weights" in stale.notice
    assert weighted.notice is None
    # Unreadable: still served with equal weights, and it says why.
    (folder / "ensemble.json").write_text('{"weights": {"baseline_cnn": 3')
    broken = load_classifier("ensemble", device="cpu", weights_dir=folder)
    np.testing.assert_allclose(broken.predict(faces), ensemble.predict(faces), atol=1e-6)
    assert "ensemble.json is unreadable" in broken.notice and "weighted equally" in broken.notice
    assert "\n" not in broken.notice
    from fer_desktop.ensemble import describe_ensemble

    assert "ensemble.json is unreadable" in describe_ensemble(folder)

    for name in ("attention_cnn.safetensors", "attention_cnn.json"):
        (folder / name).unlink()
    with pytest.raises(WeightsNotFoundError, match="at least two trained models; found 1"):
        load_classifier("ensemble", device="cpu", weights_dir=folder)
