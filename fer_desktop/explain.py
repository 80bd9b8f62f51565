"""Explanation maps over the 48x48 face: where a model looked for its answer.

- ``gradcam``: Grad-CAM (Selvaraju et al., ICCV 2017) on the last convolutional
  stage (``forward_features``, after any attention), for every model: the
  stage's channels weighted by the mean gradient of the class score.
- ``attention``: the spatial attention map the model itself computes
  (``attention_cnn``'s, and the spatial half of ``resnet50_cbam``'s CBAM).

On ONNX Runtime both come out of the exported graph and the head's gradient in
numpy (``onnx_classifier.py``); here is the PyTorch computation they are tested against.

Both return ``[N, 48, 48]`` float32 maps scaled to [0, 1] per face, aligned with
the face crops the classifier was given. No Qt here, and torch is imported only
when a map is computed: the GUI thread can check a method name without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from fer_desktop.models.layers import SpatialAttention

METHODS = ("gradcam", "attention")
FACE_SIDE = 48


def has_attention(classifier) -> bool:
    members = getattr(classifier, "members", None)  # the ensemble: if any member has attention
    if members is not None:
        return any(has_attention(m) for m in members)
    if getattr(classifier, "backend", None) == "onnx":
        return classifier.has_attention
    return _attention_layer(classifier.model) is not None


def explain(classifier, faces, method: str = "gradcam", target=None) -> np.ndarray:
    """Maps for uint8 faces ``[N, 48, 48]``; ``target`` is a class index, or one per face
    (default: each face's top class).

    For the ensemble, the weighted mean of its members' maps for the ensemble's own
    top classes (members without attention sit out of "attention").
    """
    if getattr(classifier, "members", None) is not None:
        return _ensemble_maps(classifier, faces, method, target)
    if method == "gradcam":
        return gradcam(classifier, faces, target)
    if method == "attention":
        return attention_maps(classifier, faces)
    raise ValueError(f"unknown explanation {method!r}; choose one of {', '.join(METHODS)}")


def gradcam(classifier, faces, target: int | None = None) -> np.ndarray:
    if getattr(classifier, "backend", None) == "onnx":  # the same computation in numpy (onnx_classifier.py)
        return classifier.gradcam(faces, target)
    import torch
    import torch.nn.functional as F

    model = classifier.model
    x = classifier.inputs(faces)
    # Grad-CAM needs the gradient at the last stage only: the backbone runs without
    # recording a graph (for ResNet-50 that is most of the cost), the head with one.
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        features = model.forward_features(x)
    features = features.detach().requires_grad_(True)
    with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
        logits = model.forward_head(features)
        if target is None:  # the class the app shows: after the card's per-emotion shift
            bias = getattr(classifier, "class_bias", None)
            shown = logits if bias is None else logits + torch.from_numpy(bias).to(logits.device)
            classes = shown.argmax(1)
        else:  # one class for all faces, or one per face
            classes = torch.as_tensor(np.broadcast_to(np.asarray(target), (len(x),)).copy(), device=x.device)
        score = logits.gather(1, classes.view(-1, 1)).sum()
        (grads,) = torch.autograd.grad(score, features)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return _face_maps(F.relu((weights * features).sum(dim=1, keepdim=True)))


def attention_maps(classifier, faces) -> np.ndarray:
    if getattr(classifier, "backend", None) == "onnx":
        return classifier.attention_maps(faces)
    import torch

    layer = _attention_layer(classifier.model)
    if layer is None:
        raise ValueError(f"{classifier.name} computes no spatial attention; use Grad-CAM")
    captured = []
    handle = layer.register_forward_hook(lambda module, args, out: captured.append(module.attention_map(args[0])))
    try:
        with torch.inference_mode():
            classifier.model(classifier.inputs(faces))
    finally:
        handle.remove()
    return _face_maps(captured[0])


def _ensemble_maps(ensemble, faces, method: str, target) -> np.ndarray:
    if method not in METHODS:
        raise ValueError(f"unknown explanation {method!r}; choose one of {', '.join(METHODS)}")
    if target is None:
        target = ensemble.predict(faces).argmax(1)
    parts = [(w, m) for m, w in zip(ensemble.members, ensemble.weights)
             if w > 0 and (method == "gradcam" or has_attention(m))]
    if not parts:
        raise ValueError("no model of the ensemble computes spatial attention; use Grad-CAM")
    maps = sum(w * explain(m, faces, method, target if method == "gradcam" else None) for w, m in parts)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return ((maps - low) / np.maximum(high - low, 1e-8)).astype(np.float32)


def _attention_layer(model) -> SpatialAttention | None:
    from fer_desktop.models.layers import SpatialAttention

    return next((m for m in model.modules() if isinstance(m, SpatialAttention)), None)


def _face_maps(maps: torch.Tensor) -> np.ndarray:
    """``[N, 1, h, w]`` -> ``[N, 48, 48]`` in [0, 1], each map stretched to its own range."""
    import torch.nn.functional as F

    maps = F.interpolate(maps.detach().float(), size=(FACE_SIDE, FACE_SIDE), mode="bilinear",
                         align_corners=False)[:, 0]
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    return ((maps - low) / (high - low).clamp_min(1e-8)).cpu().numpy().astype(np.float32)


class LiveExplainer:
    """Maps for live video at a reduced rate, so that explaining does not halve the frame rate.

    A map is drawn in its face's crop, so it follows the face between updates;
    it is recomputed every ``interval`` seconds, for a new face, and after a
    model switch. ``method`` "attention" falls back to Grad-CAM for models
    without attention (``method_for``).
    """

    def __init__(self, method: str = "gradcam", interval: float = 0.2) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown explanation {method!r}; choose one of {', '.join(METHODS)}")
        self.method = method
        self.interval = interval
        self._maps: dict[int, np.ndarray] = {}
        self._classifier = None
        self._last = -float("inf")

    def method_for(self, classifier) -> str:
        return "attention" if self.method == "attention" and has_attention(classifier) else "gradcam"

    def update(self, classifier, keys, crops, now: float) -> dict[int, np.ndarray]:
        """``keys``: one id per face (track ids), ``crops``: their uint8 ``[N, 48, 48]`` faces."""
        keys = list(keys)
        if not keys:
            self._maps = {}
            return {}
        stale = (classifier is not self._classifier or now - self._last >= self.interval
                 or any(k not in self._maps for k in keys))
        if stale:
            maps = explain(classifier, crops, self.method_for(classifier))
            self._maps = dict(zip(keys, maps))
            self._classifier, self._last = classifier, now
        return {k: self._maps[k] for k in keys}
