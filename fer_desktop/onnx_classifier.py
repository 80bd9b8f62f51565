"""The CPU runtime: a trained model's exported graph (``<name>.onnx``) on ONNX Runtime, no torch.

``OnnxClassifier.predict`` keeps ``Classifier.predict``'s contract (uint8 faces
``[N, 48, 48]`` in, float32 probabilities ``[N, 7]`` out) and applies the
card's preprocessing and test-time flip. The graph also outputs the last
convolutional stage and, where the model has one, its spatial attention map
(``training/runtime_export.py``), so Explain needs no torch either: Grad-CAM's gradient
is computed here, in numpy, through the model's small head (pooling, then one
or two linear layers), read from the safetensors beside the graph.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_desktop.emotions import EMOTIONS
from fer_desktop.preprocessing import FACE_SIZE, face_batch, faces_to_array
from fer_desktop.weights import InferenceSettings


@dataclass(frozen=True)
class CpuDevice:
    """Stands where the torch path has a ``torch.device``: callers read ``.type``."""

    type: str = "cpu"

    def __str__(self) -> str:
        return self.type


def _threads() -> int:
    # Two cores are the common laptop minimum; more threads than that gain little for
    # one face and take cores from decoding and detection.
    return max(1, min(4, os.cpu_count() or 1))


class OnnxClassifier:
    """A model exported by ``training.export``, run by ONNX Runtime on the CPU."""

    backend = "onnx"

    def __init__(self, path: str | os.PathLike, card: dict, weights_path: str | os.PathLike | None = None) -> None:
        import onnxruntime as ort

        self.card = card
        self.name: str = card["model"]
        self.path = Path(path)
        self.weights_path = Path(weights_path) if weights_path else self.path.with_suffix(".safetensors")
        settings = InferenceSettings.from_card(card)
        self.input_size, self.mean, self.std = settings.input_size, settings.mean, settings.std
        self.hflip_tta = settings.hflip_tta  # the card's, as in the torch runtime
        self.temperature = settings.temperature
        self.class_bias = None if settings.class_bias is None else np.asarray(settings.class_bias, np.float32)
        self.precision = (card.get("runtime") or {}).get("precision", "fp32")
        self.device = CpuDevice()
        self.engine = f"ONNX Runtime {self.precision}"
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        # Threads that spin between runs take the cores from decoding, detection and the GUI
        # (the torch path sets OMP_WAIT_POLICY=PASSIVE for the same reason).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._head: _Head | None = None

    @property
    def title(self) -> str:
        from fer_desktop.models.registry import get_spec

        return get_spec(self.name).title

    @property
    def has_attention(self) -> bool:
        return "attention" in self.outputs

    def inputs(self, faces) -> np.ndarray:
        return faces_to_array(faces, self.input_size, self.mean, self.std)

    def run(self, faces, outputs: list[str]) -> list[np.ndarray]:
        return self.session.run(outputs, {"x": self.inputs(faces)})

    def logits(self, faces) -> np.ndarray:
        x = self.inputs(faces)
        if not self.hflip_tta:
            return self.session.run(["logits"], {"x": x})[0]
        # The faces and their mirrors as one batch: one pass through the network.
        (both,) = self.session.run(["logits"], {"x": np.concatenate([x, x[..., ::-1]])})
        return (both[:len(x)] + both[len(x):]) / 2

    def predict(self, faces) -> np.ndarray:
        faces = face_batch(faces)
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        logits = self.logits(faces)
        if self.class_bias is not None:
            logits = logits + self.class_bias
        return softmax(logits / self.temperature).astype(np.float32)

    def gradcam(self, faces, target=None) -> np.ndarray:
        """Grad-CAM maps ``[N, 48, 48]`` in [0, 1], as ``explain.gradcam`` computes them with torch."""
        faces = face_batch(faces)
        features, logits = self.run(faces, ["features", "logits"])
        if self._head is None:
            self._head = _Head.read(self.weights_path)
        if target is None and self.class_bias is not None:  # the class the app shows
            logits = logits + self.class_bias
        classes = logits.argmax(1) if target is None else np.broadcast_to(np.asarray(target), (len(faces),))
        grads = self._head.gradient(features, classes)
        weights = grads.mean(axis=(2, 3), keepdims=True)
        return face_maps(np.maximum((weights * features).sum(axis=1), 0.0))

    def attention_maps(self, faces) -> np.ndarray:
        if not self.has_attention:
            raise ValueError(f"{self.name} computes no spatial attention; use Grad-CAM")
        (maps,) = self.run(face_batch(faces), ["attention"])
        return face_maps(maps[:, 0])


class _Head:
    """The classifier head after the last stage: adaptive average pooling, flatten, then linear
    layers with ReLU between them (dropout is the identity at inference). Both models' heads
    have this shape (``models/custom_cnn.py``, ``models/resnet.py``)."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.layers = layers

    @classmethod
    def read(cls, weights_path: Path) -> _Head:
        from safetensors import safe_open

        # Only the head's tensors: a ResNet's file is 47 MB, its head 28 KB.
        with safe_open(str(weights_path), framework="numpy") as f:
            keys = [k for k in f.keys() if k.startswith("head.") and k.endswith(".weight")]
            keys.sort(key=lambda k: int(k.split(".")[1]))
            layers = [(f.get_tensor(k).astype(np.float32), f.get_tensor(k[:-len("weight")] + "bias").astype(np.float32))
                      for k in keys]
        return cls(layers)

    def gradient(self, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """d logit[class] / d features, for features ``[N, C, h, w]``."""
        n, c, h, w = features.shape
        side = int(round((self.layers[0][0].shape[1] / c) ** 0.5))
        pool = pooling_matrix(h, w, side)  # [side*side, h*w]
        x = (features.reshape(n, c, h * w) @ pool.T).reshape(n, -1)
        masks = []
        for weight, bias in self.layers[:-1]:
            x = x @ weight.T + bias
            masks.append(x > 0)
            x = np.maximum(x, 0)
        grad = self.layers[-1][0][np.asarray(classes)]  # [N, hidden]
        for (weight, _), mask in zip(reversed(self.layers[:-1]), reversed(masks)):
            grad = (grad * mask) @ weight
        grad = grad.reshape(n, c, side * side) @ pool
        return grad.reshape(n, c, h, w)


def pooling_bins(size: int, out: int) -> np.ndarray:
    """``AdaptiveAvgPool1d(out)`` on ``size`` values as a matrix ``[out, size]`` (torch's bins)."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        start, end = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def pooling_matrix(h: int, w: int, side: int) -> np.ndarray:
    """``AdaptiveAvgPool2d(side)`` on an ``h x w`` map as a matrix ``[side*side, h*w]``."""
    return np.kron(pooling_bins(h, side), pooling_bins(w, side))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def face_maps(maps: np.ndarray) -> np.ndarray:
    """``[N, h, w]`` -> ``[N, 48, 48]`` in [0, 1], each stretched to its own range (bilinear, half-pixel
    centres, as ``explain._face_maps`` with torch)."""
    import cv2

    maps = np.asarray(maps, np.float32)
    out = np.stack([cv2.resize(m, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR) for m in maps]) \
        if len(maps) else np.zeros((0, FACE_SIZE, FACE_SIZE), np.float32)
    low = out.min(axis=(1, 2), keepdims=True) if len(out) else out
    high = out.max(axis=(1, 2), keepdims=True) if len(out) else out
    return ((out - low) / np.maximum(high - low, 1e-8)).astype(np.float32)
