"""Explanation maps (no Qt): shapes and range for every model, and that Grad-CAM points at the evidence."""

import numpy as np
import pytest

from fer_desktop.classifier import load_classifier
from fer_desktop.emotions import EMOTIONS
from fer_desktop.explain import explain, has_attention

MODELS = ["baseline_cnn", "attention_cnn", "resnet50", "resnet50_cbam"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", MODELS)
def test_maps_have_the_face_shape_and_unit_range(tiny_weights_dir, name):
    clf = load_classifier(name, device="cpu", weights_dir=tiny_weights_dir)
    faces = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    methods = ["gradcam", "attention"] if has_attention(clf) else ["gradcam"]
    assert has_attention(clf) == (name in ("attention_cnn", "resnet50_cbam"))
    for method in methods:
        maps = explain(clf, faces, method)
        assert maps.shape == (2, 48, 48) and maps.dtype == np.float32
        assert maps.min() >= 0 and maps.max() <= 1 and np.isfinite(maps).all()
    if not has_attention(clf):
        with pytest.raises(ValueError, match="no spatial attention"):
            explain(clf, faces, "attention")


def half_evidence_npz(path, per_class: int = 30, seed: int = 0):
    """The class is a stripe direction drawn on the left half only; the right half is noise for every class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :24]
    n = per_class * len(EMOTIONS) + 28
    labels = np.arange(n) % len(EMOTIONS)
    pixels = rng.integers(0, 256, (n, 48, 48)).astype(np.uint8)
    for i, k in enumerate(labels):
        a = k * np.pi / len(EMOTIONS)
        stripes = 127 + 100 * np.sin((xx * np.cos(a) + yy * np.sin(a)) / 2 + rng.uniform(0, 6))
        pixels[i, :, :24] = stripes.clip(0, 255)
    split = np.array(["train"] * (n - 28) + ["val"] * 14 + ["test"] * 14)
    np.savez(path, pixels=pixels, labels=labels, split=split)
    return path


def test_gradcam_puts_its_mass_where_the_evidence_is(tmp_path):
    from training.recipes import resolve_recipe
    from training.session import RunConfig
    from training.trainer import train

    data = half_evidence_npz(tmp_path / "half.npz")
    recipe = resolve_recipe("baseline_cnn", "best", overrides={
        "epochs": 6, "batch_size": 30, "tta": "none", "augment.hflip": False, "augment.erase_p": 0.0,
        "augment.translate": 0.0, "architecture.widths": [8, 16, 16]})
    metrics = train(RunConfig(model="baseline_cnn", data=str(data), out=str(tmp_path / "run"), device="cpu",
                              progress=False, runtime=False), recipe)
    assert metrics["test_accuracy"] >= 0.8  # it learnt from the left half
    clf = load_classifier(weights_path=tmp_path / "run" / "baseline_cnn.safetensors", device="cpu")
    faces = np.load(data)["pixels"][-14:]
    maps = explain(clf, faces, "gradcam")
    left = maps[:, :, :24].sum() / maps.sum()
    assert left > 0.65, left  # a map that ignored the gradients, or flipped sides, fails here


def test_live_maps_are_recomputed_at_the_interval_for_new_faces_and_after_a_switch(tiny_weights_dir):
    from fer_desktop.explain import LiveExplainer

    baseline = load_classifier("baseline_cnn", device="cpu", weights_dir=tiny_weights_dir)
    attention = load_classifier("attention_cnn", device="cpu", weights_dir=tiny_weights_dir)
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (2, 48, 48), dtype=np.uint8)
    live = LiveExplainer("attention", interval=0.2)
    assert live.method_for(baseline) == "gradcam" and live.method_for(attention) == "attention"

    first = live.update(baseline, [1, 2], faces, now=10.0)
    assert set(first) == {1, 2}
    same = live.update(baseline, [1, 2], faces[::-1], now=10.1)  # within the interval: the maps follow the ids
    assert all(same[k] is first[k] for k in (1, 2))
    new_face = live.update(baseline, [1, 3], faces, now=10.15)  # a face without a map: computed now
    assert set(new_face) == {1, 3} and new_face[1] is not first[1]
    later = live.update(baseline, [1, 3], faces, now=10.4)
    assert later[1] is not new_face[1]
    switched = live.update(attention, [1, 3], faces, now=10.45)
    np.testing.assert_allclose(switched[1], explain(attention, faces[:1], "attention")[0], atol=1e-5)
    assert live.update(attention, [], faces[:0], now=10.5) == {}
    with pytest.raises(ValueError, match="unknown explanation"):
        LiveExplainer("saliency")


@pytest.mark.parametrize("name", ["baseline_cnn", "resnet50_cbam"])
def test_gradcam_equals_the_textbook_computation_through_the_whole_graph(tiny_weights_dir, name):
    import torch
    import torch.nn.functional as F

    from fer_desktop.explain import _face_maps, gradcam

    clf = load_classifier(name, device="cpu", weights_dir=tiny_weights_dir)
    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    x = clf.inputs(faces).detach().requires_grad_(True)
    with torch.enable_grad():
        features = clf.model.forward_features(x)
        logits = clf.model.forward_head(features)
        score = logits.gather(1, logits.argmax(1, keepdim=True)).sum()
        (grads,) = torch.autograd.grad(score, features)
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * features).sum(dim=1, keepdim=True))
    maps = gradcam(clf, faces)
    assert (maps.reshape(3, -1).max(1) > 0.99).all()  # non-trivial maps, so the comparison means something
    np.testing.assert_allclose(maps, _face_maps(cam), atol=1e-5)
