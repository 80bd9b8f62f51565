"""The two runtimes: ONNX Runtime (the app's CPU engine) held to PyTorch, and the choice between them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_desktop.classifier import EngineUnavailableError, load_classifier
from fer_desktop.explain import explain

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights"
MODELS = ["baseline_cnn", "attention_cnn", "resnet50", "resnet50_cbam"]
ATTENTION = ["attention_cnn", "resnet50_cbam"]


def export(folder: Path, names, precision: str = "fp32") -> Path:
    from training.commands.export import main

    assert main([*names, "--weights-dir", str(folder), "--precision", precision]) == 0
    return folder


@pytest.fixture(scope="module")
def tiny_exported(tmp_path_factory):
    """Untrained weights of all four models with their fp32 runtime files (small input sizes)."""
    from conftest import make_tiny_weights

    return export(make_tiny_weights(tmp_path_factory.mktemp("exported")), MODELS)


@pytest.fixture(scope="module")
def shipped_fp32(tmp_path_factory):
    """The shipped weights, exported again in fp32 (the shipped files are int8)."""
    folder = tmp_path_factory.mktemp("shipped_fp32")
    for name in MODELS:
        for suffix in (".safetensors", ".json"):
            shutil.copy2(SHIPPED / f"{name}{suffix}", folder)
    return export(folder, MODELS)


def faces(n: int, seed: int = 0) -> np.ndarray:
    """Face-like test inputs without the dataset: the test photo's face, shifted, scaled and lit differently."""
    import cv2

    from conftest import face_patch

    gray = cv2.cvtColor(face_patch(96), cv2.COLOR_BGR2GRAY)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        dx, dy = rng.integers(-8, 9, 2)
        side = int(rng.integers(70, 96))
        crop = gray[max(0, 8 + dy):, max(0, 8 + dx):][:side, :side]
        face = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
        out.append(np.clip(face * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30), 0, 255).astype(np.uint8))
    return np.stack(out)


def correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of maps; a flat map (Grad-CAM all zero: no positive
    evidence) counts as 1 where the other is the same, 0 otherwise."""
    def corr(x, y):
        if x.std() < 1e-6 or y.std() < 1e-6:
            return float(np.allclose(x, y, atol=1e-3))
        return np.corrcoef(x.ravel(), y.ravel())[0, 1]

    return np.array([corr(x, y) for x, y in zip(a, b)])


@pytest.mark.parametrize("name", MODELS)
def test_onnx_fp32_equals_torch(tiny_exported, name):
    x = faces(16)
    onnx = load_classifier(name, weights_dir=tiny_exported)
    torch_clf = load_classifier(name, weights_dir=tiny_exported, backend="torch")
    assert (onnx.backend, torch_clf.backend) == ("onnx", "torch")
    np.testing.assert_allclose(onnx.predict(x), torch_clf.predict(x), atol=1e-4)
    assert onnx.predict(x[0]).shape == (1, 7) and onnx.predict(x[:0]).shape == (0, 7)
    with pytest.raises(ValueError, match="48, 48"):
        onnx.predict(np.zeros((2, 64, 64), np.uint8))


@pytest.mark.parametrize("name", MODELS)
def test_onnx_gradcam_and_attention_equal_torch(tiny_exported, name):
    """Grad-CAM from the graph's features and the head's gradient in numpy, against autograd."""
    x = faces(8, seed=1)
    onnx = load_classifier(name, weights_dir=tiny_exported)
    torch_clf = load_classifier(name, weights_dir=tiny_exported, backend="torch")
    for method in ["gradcam", "attention"] if name in ATTENTION else ["gradcam"]:
        a, b = explain(onnx, x, method), explain(torch_clf, x, method)
        assert a.shape == (8, 48, 48) and a.dtype == np.float32
        assert np.median(correlations(a, b)) >= 0.99, method
    for target in (0, 3):  # an explicit class too, not only the top one
        a, b = explain(onnx, x, "gradcam", target), explain(torch_clf, x, "gradcam", target)
        assert np.median(correlations(a, b)) >= 0.99
    if name not in ATTENTION:
        with pytest.raises(ValueError, match="no spatial attention"):
            explain(onnx, x, "attention")


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_shipped_weights_onnx_fp32_within_1e4_of_torch(shipped_fp32, name):
    x = faces(32, seed=2)
    onnx = load_classifier(name, weights_dir=shipped_fp32)
    torch_clf = load_classifier(name, weights_dir=shipped_fp32, backend="torch")
    assert onnx.precision == "fp32"
    np.testing.assert_allclose(onnx.predict(x), torch_clf.predict(x), atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_shipped_models_run_int8_on_onnx_runtime_by_default(name):
    card = json.loads((SHIPPED / f"{name}.json").read_text())
    runtime = card["runtime"]
    assert (SHIPPED / runtime["file"]).is_file()
    from training.runtime_export import sha256

    # The runtime file was exported from exactly the weights beside it.
    assert runtime["weights_sha256"] == sha256(SHIPPED / f"{name}.safetensors")
    clf = load_classifier(name)
    assert clf.backend == "onnx" and clf.precision == runtime["precision"]
    # The choice of int8 was made on PublicTest, within the rule's 0.3 points of fp32.
    metrics = runtime["metrics"]
    if runtime["precision"] == "int8":
        assert metrics["int8_val_accuracy"] >= metrics["fp32_val_accuracy"] - 0.003


def int8_weight_range(path: Path) -> tuple[int, int]:
    import onnx
    from onnx import TensorProto, numpy_helper

    weights = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer
               if t.data_type == TensorProto.INT8 and len(t.dims) > 1]
    assert weights, f"{path.name}: no int8 weights"
    return min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)


@pytest.mark.parametrize("name", MODELS)
def test_shipped_int8_weights_fit_in_7_bits(name):
    """On CPUs without VNNI (AVX2 only), ONNX Runtime sums pairs of uint8 x int8 products in 16 bits:
    full-range weights saturate and cost a model points of accuracy on those CPUs only; with |w| <= 64,
    2 x 255 x 64 = 32,640 fits."""
    card = json.loads((SHIPPED / f"{name}.json").read_text())
    if card["runtime"]["precision"] == "int8":
        low, high = int8_weight_range(SHIPPED / card["runtime"]["file"])
        assert -64 <= low and high <= 64


def test_int8_export_keeps_weights_in_7_bits(tmp_path):
    from conftest import make_tiny_weights
    from training.commands.export import main as export

    folder = make_tiny_weights(tmp_path / "w", ["baseline_cnn"])
    assert export(["baseline_cnn", "--weights-dir", str(folder), "--precision", "int8"]) == 0
    low, high = int8_weight_range(folder / "baseline_cnn.onnx")
    assert -64 <= low and high <= 64 and high - low > 100  # the 7-bit range, used


@pytest.fixture(scope="module")
def private_test():
    path = os.environ.get("FER2013_NPZ")
    if not path or not Path(path).is_file():
        pytest.skip("set FER2013_NPZ to the full FER-2013 .npz to compare on its PrivateTest")
    data = np.load(path)
    chosen = np.flatnonzero(data["split"] == "test")[:1000]
    return data["pixels"][chosen], data["labels"][chosen]


@pytest.mark.dataset
@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_shipped_int8_agrees_with_torch_on_privatetest(private_test, name):
    """The int8 graph's top-1 against PyTorch's on 1,000 PrivateTest faces, and its maps against torch's."""
    x, _ = private_test
    onnx = load_classifier(name)
    torch_clf = load_classifier(name, backend="torch")
    top_onnx = np.concatenate([onnx.predict(x[i:i + 250]) for i in range(0, len(x), 250)]).argmax(1)
    top_torch = np.concatenate([torch_clf.predict(x[i:i + 250]) for i in range(0, len(x), 250)]).argmax(1)
    assert (top_onnx == top_torch).mean() >= 0.98
    some = x[:64]
    for method in ["gradcam", "attention"] if name in ATTENTION else ["gradcam"]:
        assert np.median(correlations(explain(onnx, some, method), explain(torch_clf, some, method))) >= 0.95


def test_backend_choice(tiny_exported, tmp_path):
    # auto: ONNX Runtime where the card names a runtime file ...
    assert load_classifier("baseline_cnn", weights_dir=tiny_exported).backend == "onnx"
    assert load_classifier("baseline_cnn", device="cpu", weights_dir=tiny_exported).backend == "onnx"
    # ... PyTorch where it names none: a retrained card, whose old .onnx would be stale.
    for suffix in (".safetensors", ".onnx"):
        shutil.copy2(tiny_exported / f"baseline_cnn{suffix}", tmp_path)
    card = json.loads((tiny_exported / "baseline_cnn.json").read_text())
    del card["runtime"]
    (tmp_path / "baseline_cnn.json").write_text(json.dumps(card))
    assert load_classifier("baseline_cnn", weights_dir=tmp_path).backend == "torch"
    with pytest.raises(EngineUnavailableError, match="training.export"):
        load_classifier("baseline_cnn", weights_dir=tmp_path, backend="onnx")
    with pytest.raises(EngineUnavailableError, match="CPU"):
        load_classifier("baseline_cnn", device="cuda", weights_dir=tiny_exported, backend="onnx")
    with pytest.raises(ValueError, match="backend"):
        load_classifier("baseline_cnn", weights_dir=tiny_exported, backend="tensorrt")


def test_a_damaged_runtime_file_names_it(tiny_exported, tmp_path):
    from fer_desktop.weights import WeightsError

    for suffix in (".safetensors", ".json"):
        shutil.copy2(tiny_exported / f"baseline_cnn{suffix}", tmp_path)
    (tmp_path / "baseline_cnn.onnx").write_bytes(b"not a graph")
    with pytest.raises(WeightsError, match="baseline_cnn.onnx"):
        load_classifier("baseline_cnn", weights_dir=tmp_path)


def test_ensemble_and_explain_on_onnx_runtime(tiny_exported):
    ensemble = load_classifier("ensemble", weights_dir=tiny_exported)
    assert {m.backend for m in ensemble.members} == {"onnx"}
    x = faces(3)
    assert ensemble.predict(x).shape == (3, 7)
    for method in ("gradcam", "attention"):
        maps = explain(ensemble, x, method)
        assert maps.shape == (3, 48, 48) and np.isfinite(maps).all()


def run_without_torch(code: str, *args: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter where ``import torch`` fails, as in the runtime-only install."""
    prelude = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code, *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_the_onnx_path_never_imports_torch():
    code = (
        "import sys, numpy as np\n"
        "from fer_desktop import load_classifier\n"
        "from fer_desktop.explain import explain\n"
        "x = np.full((2, 48, 48), 128, np.uint8)\n"
        "for name in ['baseline_cnn', 'attention_cnn', 'resnet50', 'resnet50_cbam', 'ensemble']:\n"
        "    clf = load_classifier(name)\n"
        "    assert clf.predict(x).shape == (2, 7)\n"
        "    assert explain(clf, x, 'gradcam').shape == (2, 48, 48)\n"
        "print('ok')\n")
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_fer_predict_without_torch(tmp_path):
    from conftest import FACE_IMAGE

    code = "import sys; from fer_desktop.predict_cli import main; sys.exit(main(sys.argv[1:]))"
    ok = run_without_torch(code, str(FACE_IMAGE), "--model", "resnet50_cbam", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["faces"][0]["label"] == "happy"
    # Asking for PyTorch without it: one line that names the extra to install, status 2.
    for flags in (["--backend", "torch"], ["--device", "cuda"]):
        refused = run_without_torch(code, str(FACE_IMAGE), "--model", "baseline_cnn", *flags)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1, refused.stderr
        assert "fer-desktop[torch]" in lines[0]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU on this machine: the GPU path is checked where there is one")
def test_cuda_runs_pytorch_under_fp16_autocast():
    x = faces(8)
    gpu = load_classifier("baseline_cnn", device="cuda")
    assert gpu.backend == "torch" and gpu.device.type == "cuda" and gpu.engine == "PyTorch fp16"
    cpu = load_classifier("baseline_cnn", device="cpu", backend="torch")
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), atol=1e-2)  # fp16 arithmetic


def test_the_live_worker_on_onnx_runtime_never_loads_torch(face_video):
    """The window's inference thread, serving a shipped model on the CPU, loads no PyTorch code
    (not even the model code it preloads for PyTorch's sake), though torch is installed here."""
    code = (
        "import sys, time\n"
        "from fer_desktop.capture import FrameSource\n"
        "from fer_desktop.inference import InferenceWorker\n"
        "results = []\n"
        f"source = FrameSource({str(face_video)!r}).start()\n"
        "worker = InferenceWorker(model='resnet50_cbam', on_result=results.append)\n"
        "worker.set_source(source)\n"
        "worker.start()\n"
        "deadline = time.monotonic() + 60\n"
        "while len(results) < 5 and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "time.sleep(1.0)  # the background preload, if any, has run by now\n"
        "worker.stop(); source.stop()\n"
        "print(len(results) >= 5, results[-1].faces[0].label if results else None, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["True", "happy", "False"], out.stdout + out.stderr[-1000:]
