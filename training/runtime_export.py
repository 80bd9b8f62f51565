"""The runtime file the app serves on the CPU: a trained model as an ONNX graph for ONNX Runtime,
int8 where that keeps PublicTest's accuracy, fp32 with fp16-stored weights otherwise, and the card's
``runtime`` block that names it (``python -m training export`` describes the choice)."""

import hashlib
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fer_desktop.models import create_model
from fer_desktop.onnx_classifier import pooling_bins
from fer_desktop.preprocessing import faces_to_array
from fer_desktop.weights import InferenceSettings, read_card, read_state

OPSET = 17
CALIBRATION_FACES = 512
MAX_DROP = 0.003  # int8 ships if PublicTest accuracy stays within 0.3 points of fp32


class MatrixPool(nn.Module):
    """``AdaptiveAvgPool2d`` as two matrix products, for the sizes ONNX's exporter refuses (an output
    size that does not divide the input: tiny test models); the same bins as torch's."""

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])  # constants in the traced graph: one input size
        rows, cols = (torch.from_numpy(pooling_bins(n, out)) for n, out in zip((h, w), self.output_size))
        return rows @ x @ cols.T


def exportable_pooling(model: nn.Module, input_size: int) -> None:
    """Swap, in place, each adaptive pooling whose output does not divide its input for ``MatrixPool``."""
    sizes = {}
    hooks = [m.register_forward_hook(lambda mod, args, out: sizes.__setitem__(mod, tuple(args[0].shape[-2:])))
             for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    for hook in hooks:
        hook.remove()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if child in sizes:
                out = child.output_size if isinstance(child.output_size, tuple) else (child.output_size,) * 2
                if any(o is not None and s % o for s, o in zip(sizes[child], out)):
                    setattr(parent, name, MatrixPool(out))


class RuntimeGraph(nn.Module):
    """What the runtime needs from one forward pass: logits, last-stage features, attention map."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from fer_desktop.models.layers import SpatialAttention

        self.model = model
        self.attention = next((m for m in model.modules() if isinstance(m, SpatialAttention)), None)
        self._captured: list[torch.Tensor] = []
        if self.attention is not None:
            self.attention.register_forward_hook(
                lambda module, args, out: self._captured.append(module.attention_map(args[0])))

    def output_names(self) -> list[str]:
        return ["logits", "features"] + (["attention"] if self.attention is not None else [])

    def forward(self, x: torch.Tensor):
        self._captured.clear()
        features = self.model.forward_features(x)
        logits = self.model.forward_head(features)
        return (logits, features, *self._captured)


def load_model(weights: Path) -> tuple[nn.Module, dict]:
    card = read_card(weights)
    model = create_model(card["model"], **card.get("architecture", {}))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in read_state(weights).items()})
    return model.eval(), card


def export_fp32(model: nn.Module, input_size: int, path: Path) -> list[str]:
    """The fp32 graph with its BatchNorms as nodes of their own: ONNX Runtime folds them at load, in
    fp32, so the weights stay the fp16 values trained (folded before storing, they drifted 5e-4)."""
    exportable_pooling(model, input_size)
    graph = RuntimeGraph(model).eval()
    names = graph.output_names()
    x = torch.randn(2, 3, input_size, input_size)
    with warnings.catch_warnings():
        # The TorchScript exporter: it traces the attention hook as it runs, and needs no
        # onnxscript (the dynamo exporter's dependency); torch warns that it is legacy.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # MatrixPool's constants are meant to be
        torch.onnx.export(graph, (x,), str(path), opset_version=OPSET, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                          input_names=["x"], output_names=names,
                          dynamic_axes={n: {0: "n"} for n in ["x", *names]})
    return names


def store_weights_fp16(src: Path, dst: Path) -> None:
    """The fp32 graph with its large weights stored as fp16 and cast back at load: half the file,
    fp32 arithmetic (the app's weights are fp16 already, so nothing is lost)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= 256:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dst))


class _Faces:
    """onnxruntime's CalibrationDataReader: preprocessed faces in batches."""

    def __init__(self, x: np.ndarray, batch: int = 64) -> None:
        self._batches = iter([{"x": x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._batches, None)


def quantize_int8(fp32: Path, dst: Path, calibration: np.ndarray) -> None:
    """Static int8 (QDQ) with 7-bit weights: on CPUs without VNNI (AVX2 only) ONNX Runtime multiplies
    uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit sums of two products saturate
    with full-range weights (baseline_cnn lost 1.9 points of PublicTest that way on an AVX2-only
    EPYC); with weights in [-64, 64] no sum can (2 x 255 x 64 < 2**15), so every CPU computes the same."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared))  # shape inference and graph folding (BatchNorm) first
        quantize_static(str(prepared), str(dst), _Faces(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax)


def measure(path: Path, card: dict, faces: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, macro-F1 and loss through ONNX Runtime as the app runs it (the card's test-time flip
    included), as ``training.evaluate`` reports them."""
    from fer_desktop.onnx_classifier import OnnxClassifier
    from training.evaluation import predict_split, split_metrics

    return split_metrics(predict_split(OnnxClassifier(path, card), faces), labels)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export(weights: Path, data=None, max_drop: float = MAX_DROP, seed: int = 0, force: str | None = None) -> dict:
    """Write ``<weights>.onnx`` beside the safetensors and the ``runtime`` block into its card.

    ``data``: a dataset path or loaded ``FaceSplits`` (calibration faces from its training split,
    the int8 check on PublicTest, PrivateTest reported); None only with ``force``.
    """
    import onnxruntime

    weights = Path(weights)
    model, card = load_model(weights)
    settings = InferenceSettings.from_card(card)
    size = settings.input_size
    out = weights.with_suffix(".onnx")
    splits = _splits(data) if data is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_fp32(model, size, fp32)
        runtime: dict = {"file": out.name, "opset": OPSET, "onnxruntime": onnxruntime.__version__,
                         "weights_sha256": sha256(weights)}
        if splits is None and force is None:
            raise ValueError("choosing int8 needs --data (or --precision to force one)")
        candidates = {}
        if force in (None, "int8"):
            rng = np.random.default_rng(seed)
            train_x = splits["train"] if splits else np.zeros((CALIBRATION_FACES, 48, 48), np.uint8)
            chosen = np.sort(rng.choice(len(train_x), size=min(CALIBRATION_FACES, len(train_x)), replace=False))
            picked = train_x[chosen] if isinstance(train_x, np.ndarray) else train_x[torch.from_numpy(chosen)]
            calibration = faces_to_array(np.asarray(picked), size, settings.mean, settings.std)
            quantize_int8(fp32, Path(tmp) / "int8.onnx", calibration)
            candidates["int8"] = Path(tmp) / "int8.onnx"
        if force in (None, "fp32"):
            store_weights_fp16(fp32, Path(tmp) / "fp16w.onnx")
            candidates["fp32"] = Path(tmp) / "fp16w.onnx"
        if splits is not None:
            val = {p: measure(f, card, *splits["val"]) for p, f in candidates.items()}
            if force is None:
                int8_ok = val["int8"]["accuracy"] >= val["fp32"]["accuracy"] - max_drop
                precision = "int8" if int8_ok else "fp32"
            else:
                precision = force
            test = measure(candidates[precision], card, *splits["test"])
            runtime["metrics"] = {
                **{f"{split}_{key}": result[key] for split, result in (("val", val[precision]), ("test", test))
                   for key in ("accuracy", "macro_f1", "loss")},
                **{f"{p}_val_accuracy": result["accuracy"] for p, result in val.items()}}
        else:
            precision = force
        runtime["precision"] = precision
        if precision == "int8":
            runtime["calibration"] = {"faces": int(len(calibration)), "split": "train", "seed": seed,
                                      "method": "MinMax, QDQ, per-channel 7-bit int8 weights (reduce_range), "
                                                "uint8 activations",
                                      "rule": f"int8 if PublicTest within {max_drop * 100:.1f} points of fp32"}
        else:
            runtime["storage"] = "fp16 weights, fp32 arithmetic"
        out.write_bytes(candidates[precision].read_bytes())
    card_path = weights.with_suffix(".json")
    saved = json.loads(card_path.read_text(encoding="utf-8"))
    saved["runtime"] = runtime
    card_path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    return runtime


def _splits(data) -> dict:
    """The training faces (as loaded: a tensor, or streamed), PublicTest and PrivateTest as numpy."""
    from training.data import load_dataset

    if isinstance(data, (str, Path)):
        data = load_dataset(str(data))
    return {"train": data.train_x,
            **{name: (getattr(data, f"{name}_x").numpy(), getattr(data, f"{name}_y").numpy())
               for name in ("val", "test")}}
