"""Weights files: fp16 round trip, and every broken or mismatched file named in one message."""

import json
import shutil

import numpy as np
import pytest
import torch

from fer_desktop.classifier import load_classifier
from fer_desktop.models import create_model
from fer_desktop.weights import (ENV_WEIGHTS_DIR, WeightsError, WeightsNotFoundError, find_weights, read_card,
                                 read_state, save_weights)


def _card(name="baseline_cnn", **extra):
    return {"model": name, "architecture": {}, "input_size": 48, "mean": [0.0] * 3, "std": [1.0] * 3, **extra}


@pytest.fixture
def cnn_copy(tmp_path, cnn_weights_dir):
    """A private copy of baseline_cnn's weights that a test may damage."""
    for suffix in (".safetensors", ".json"):
        shutil.copy(cnn_weights_dir / f"baseline_cnn{suffix}", tmp_path / f"baseline_cnn{suffix}")
    return tmp_path / "baseline_cnn.safetensors"


def _fails_naming(path, match=None, **kw):
    with pytest.raises(WeightsError) as info:
        load_classifier("baseline_cnn", device="cpu", weights_path=path, **kw)
    message = str(info.value)
    assert "\n" not in message and path.name in message
    if match:
        assert match in message
    return message


def test_round_trip_fp16(tmp_path):
    torch.manual_seed(0)
    model = create_model("baseline_cnn").eval()
    path = save_weights(model, _card(recipe="test"), tmp_path / "baseline_cnn")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    card = read_card(path)
    assert card["dtype"] == "float16" and card["classes"][0] == "angry" and card["recipe"] == "test"
    state = read_state(path)
    assert all(v.dtype == torch.float16 for k, v in state.items() if v.is_floating_point())
    for key, value in model.state_dict().items():
        expected = value.half() if value.is_floating_point() else value
        assert torch.equal(state[key], expected), key
    clf = load_classifier("baseline_cnn", device="cpu", weights_path=path)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    with torch.inference_mode():
        x = torch.from_numpy(faces).float().div(255)[:, None].expand(-1, 3, -1, -1)
        ref = torch.softmax(model.half().float()(x), 1).numpy()
    np.testing.assert_allclose(clf.predict(faces), ref, atol=1e-5)


def test_corrupt_safetensors(cnn_copy):
    cnn_copy.write_bytes(b"\x00garbage, not a safetensors file" * 10)
    _fails_naming(cnn_copy, "corrupt")


def test_truncated_safetensors(cnn_copy):
    data = cnn_copy.read_bytes()
    cnn_copy.write_bytes(data[: len(data) // 2])
    _fails_naming(cnn_copy, "corrupt")


def test_empty_safetensors(cnn_copy):
    cnn_copy.write_bytes(b"")
    _fails_naming(cnn_copy)


def test_card_with_wrong_class_order(cnn_copy):
    card_path = cnn_copy.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["classes"] = card["classes"][::-1]
    card_path.write_text(json.dumps(card))
    _fails_naming(card_path, "class order")


def test_card_missing_or_not_json(cnn_copy):
    card_path = cnn_copy.with_suffix(".json")
    card_path.write_text("{not json")
    _fails_naming(card_path, "unreadable")
    card_path.write_text(json.dumps({"hello": 1}))
    _fails_naming(card_path)
    card_path.unlink()
    _fails_naming(card_path, "missing")


def test_card_for_another_model(cnn_copy):
    card_path = cnn_copy.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["model"] = "attention_cnn"
    card_path.write_text(json.dumps(card))
    _fails_naming(cnn_copy, "attention_cnn")  # asked for baseline_cnn, the card says otherwise
    # Loaded as what the card claims, the tensors do not fit that architecture.
    with pytest.raises(WeightsError) as info:
        load_classifier("attention_cnn", device="cpu", weights_path=cnn_copy)
    assert cnn_copy.name in str(info.value) and "do not match" in str(info.value)


def test_mismatched_shapes(tmp_path):
    # A card saying baseline_cnn over the tensors of a different-width model.
    model = create_model("baseline_cnn")
    state = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) if v.ndim else v for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    path = tmp_path / "baseline_cnn.safetensors"
    save_file(state, str(path))
    save_weights(model, _card(), tmp_path / "card_only")
    (tmp_path / "card_only.json").rename(path.with_suffix(".json"))
    _fails_naming(path, "do not match")


def test_unknown_architecture_in_card(cnn_copy):
    card_path = cnn_copy.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["architecture"] = {"no_such_option": 3}
    card_path.write_text(json.dumps(card))
    _fails_naming(cnn_copy, "architecture")


def test_missing_weights_name_the_train_command(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", tmp_path / "pkg" / "fer_desktop")
    with pytest.raises(WeightsNotFoundError) as info:
        load_classifier("resnet50", device="cpu", weights_dir=tmp_path)
    message = str(info.value)
    assert "python -m training.train --model resnet50 --recipe best" in message and "\n" not in message
    assert isinstance(info.value, WeightsError)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="baseline_cnn"):
        load_classifier("vgg16", device="cpu")


def test_lookup_explicit_dir_then_env(tmp_path, monkeypatch, cnn_weights_dir):
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", tmp_path / "pkg" / "fer_desktop")
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    assert find_weights("baseline_cnn") is None
    assert find_weights("baseline_cnn", cnn_weights_dir) == cnn_weights_dir / "baseline_cnn.safetensors"
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(cnn_weights_dir))
    assert find_weights("baseline_cnn") == cnn_weights_dir / "baseline_cnn.safetensors"
    assert find_weights("resnet50") is None  # not in that folder
    # An explicit folder wins over the environment variable.
    other = tmp_path / "other"
    other.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(cnn_weights_dir / f"baseline_cnn{suffix}", other / f"baseline_cnn{suffix}")
    assert find_weights("baseline_cnn", other) == other / "baseline_cnn.safetensors"
    clf = load_classifier("baseline_cnn", device="cpu")  # found through the environment variable
    assert clf.name == "baseline_cnn"


def test_weights_without_card_are_not_found(tmp_path, monkeypatch, cnn_weights_dir):
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", tmp_path / "pkg" / "fer_desktop")
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    shutil.copy(cnn_weights_dir / "baseline_cnn.safetensors", tmp_path / "baseline_cnn.safetensors")
    assert find_weights("baseline_cnn", tmp_path) is None


def test_default_model_is_the_most_accurate_available(tmp_path, monkeypatch, cnn_weights_dir):
    from fer_desktop.weights import default_model

    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", empty)  # hide the checkout's weights/
    assert default_model(empty) is None
    for name, accuracy in (("baseline_cnn", 0.66), ("attention_cnn", 0.64)):
        for suffix in (".safetensors", ".json"):
            shutil.copy(cnn_weights_dir / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
        card_path = tmp_path / f"{name}.json"
        card = json.loads(card_path.read_text())
        card["metrics"] = {"test_accuracy": accuracy}
        card_path.write_text(json.dumps(card))
    assert default_model(tmp_path) == "baseline_cnn"


def test_a_card_from_before_the_flip_and_calibration_is_read_with_neither():
    from fer_desktop.weights import InferenceSettings

    old = InferenceSettings.from_card(_card(mean=[0.5] * 3, std=[0.25] * 3))
    assert old == InferenceSettings(48, (0.5,) * 3, (0.25,) * 3, hflip_tta=False, temperature=1.0)
    new = InferenceSettings.from_card(_card(test_time_augmentation="hflip", temperature=0.8))
    assert new.hflip_tta and new.temperature == 0.8
