"""Fast CPU training: layout and precision decided from the device, recorded in the card; training learns."""

import json

import numpy as np
import pytest
import torch

from fer_desktop.classifier import load_classifier
from fer_desktop.emotions import EMOTIONS
from training.precision import autocast_bf16, cpu_runs_bf16_natively
from training.engine import Feed
from training.recipes import resolve_recipe
from training.session import RunConfig
from training.trainer import train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stripes_npz(path, per_class_train: int, seed: int = 0):
    """Faces whose class sets a stripe direction: easy to separate, hard to memorise by pixel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    n_val = n_test = 2 * len(EMOTIONS)
    labels = np.arange(per_class_train * len(EMOTIONS) + n_val + n_test) % len(EMOTIONS)
    angles = labels * np.pi / len(EMOTIONS) + rng.normal(0, 0.03, len(labels))
    pixels = np.stack([(127 + 90 * np.sin((xx * np.cos(a) + yy * np.sin(a)) / 2.5 + rng.uniform(0, 6))
                        + rng.normal(0, 20, (48, 48))).clip(0, 255).astype(np.uint8) for a in angles])
    n_train = per_class_train * len(EMOTIONS)
    split = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)
    np.savez(path, pixels=pixels, labels=labels, split=split)
    return path


@pytest.mark.parametrize("amx, avx512_bf16", [(False, False), (False, True), (True, False)])
def test_training_picks_bf16_exactly_where_the_cpu_reports_it(tmp_path, monkeypatch, amx, avx512_bf16):
    """Both branches on any CPU: the probes torch offers are set as each kind of CPU answers them."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    native = amx or avx512_bf16
    assert cpu_runs_bf16_natively() == native == autocast_bf16(torch.device("cpu"))
    data = stripes_npz(tmp_path / "s.npz", per_class_train=2)
    recipe = resolve_recipe("baseline_cnn", "best", overrides={"input_size": 32, "epochs": 1, "batch_size": 14,
                                                               "architecture.widths": [8, 8, 8]})
    train(RunConfig(model="baseline_cnn", data=str(data), out=str(tmp_path / "run"), device="cpu",
                    progress=False, runtime=False), recipe)
    card = json.loads((tmp_path / "run" / "baseline_cnn.json").read_text())
    assert card["precision"] == ("bf16-autocast" if native else "fp32")


def test_the_feed_is_channels_last_and_fp32_unless_asked():
    feed = Feed(48, (0.0,) * 3, (1.0,) * 3, torch.device("cpu"))
    assert feed.precision == "fp32" and not feed.bf16
    x = feed.inputs(torch.zeros(2, 48, 48, dtype=torch.uint8))
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    plain = Feed(48, (0.0,) * 3, (1.0,) * 3, torch.device("cpu"), channels_last=False)
    assert plain.inputs(torch.zeros(2, 48, 48, dtype=torch.uint8)).is_contiguous()


def test_training_learns_and_the_card_records_precision_and_cpu(tmp_path):
    """A separable set must be learnt: this fails if gradients, labels or augmentation are broken."""
    data = stripes_npz(tmp_path / "stripes.npz", per_class_train=24)
    recipe = resolve_recipe("baseline_cnn", "best", overrides={
        "input_size": 32, "epochs": 6, "batch_size": 24, "lr": 0.05, "augment.erase_p": 0.0,
        # The class is the stripes' angle: mirroring or rotating would turn one class into another.
        "augment.hflip": False, "augment.rotate_deg": 0.0, "augment.zoom": 0.0, "tta": "none",
        "architecture.widths": [16, 32, 32]})
    run = RunConfig(model="baseline_cnn", data=str(data), out=str(tmp_path / "run"), device="cpu",
                    progress=False, runtime=False)
    metrics = train(run, recipe)
    history = metrics["history"]
    assert history[-1]["train_loss"] < 0.75 * history[0]["train_loss"]  # label smoothing keeps it above ~0.5
    assert metrics["test_accuracy"] >= 0.85, metrics["test_accuracy"]
    card = json.loads((tmp_path / "run" / "baseline_cnn.json").read_text())
    assert card["precision"] == ("bf16-autocast" if cpu_runs_bf16_natively() else "fp32")
    assert card["cpu"] and card["architecture"]["widths"] == [16, 32, 32]
    clf = load_classifier(weights_path=tmp_path / "run" / "baseline_cnn.safetensors", device="cpu")
    assert clf.card["architecture"]["widths"] == [16, 32, 32]


def test_deterministic_runs_stay_in_fp32(tmp_path):
    data = stripes_npz(tmp_path / "s.npz", per_class_train=4)
    recipe = resolve_recipe("baseline_cnn", "best", overrides={"input_size": 32, "epochs": 1, "batch_size": 14,
                                                               "architecture.widths": [8, 8, 8]})
    run = RunConfig(model="baseline_cnn", data=str(data), out=str(tmp_path / "run"), device="cpu",
                    progress=False, runtime=False, deterministic=True)
    train(run, recipe)
    assert json.loads((tmp_path / "run" / "baseline_cnn.json").read_text())["precision"] == "fp32"


def test_cnn_best_recipe_is_the_cpu_sized_one():
    recipe = resolve_recipe("attention_cnn", "best")
    assert recipe.input_size == 48 and recipe.architecture["widths"] == [32, 64, 128, 256]
    assert recipe.mixup_alpha == 0 and recipe.tta == "hflip"


def test_benchmark_times_each_layout_and_names_the_cpu(tmp_path):
    from training.commands.benchmark import main

    out = tmp_path / "bench.json"
    assert main(["--models", "baseline_cnn", "--steps", "1", "--batch-size", "4", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    variants = {row["variant"] for row in results["results"]}
    assert {"fp32 NCHW", "fp32 channels_last"} <= variants
    assert ("bf16 channels_last" in variants) == cpu_runs_bf16_natively()
    assert results["machine"]["cpu"] and "native_bf16" in results["machine"]
    assert all(row["train_images_per_s"] > 0 for row in results["results"])


def test_command_line_entry_points_train_then_evaluate(tmp_path, capsys):
    from training.commands.evaluate import main as evaluate_main
    from training.commands.train import main as train_main

    data = stripes_npz(tmp_path / "s.npz", per_class_train=4)
    out = tmp_path / "run"
    assert train_main(["--model", "attention_cnn", "--recipe", "best", "--data", str(data), "--out", str(out),
                       "--epochs", "1", "--input-size", "32", "--batch-size", "14", "--quiet",
                       "--set", "architecture.widths=[8,8,8]", "--export", str(tmp_path / "weights")]) == 0
    assert (tmp_path / "weights" / "attention_cnn.safetensors").is_file()
    capsys.readouterr()
    assert evaluate_main(["--weights", str(out / "attention_cnn.safetensors"), "--data", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    card = json.loads((out / "attention_cnn.json").read_text())
    stated = card["runtime"]["metrics"]  # the run exported its runtime file, and the app's path runs it
    for line in lines:  # every figure printed equals the card's
        key, value = line.split()[:2]
        assert f"(card: {stated[key]})" in line and float(value) == stated[key]
    assert any(line.startswith("test_accuracy") for line in lines)
    assert evaluate_main(["--weights", str(out / "attention_cnn.safetensors"), "--data", str(data),
                          "--splits", "test", "--per-class"]) == 0
    recall = capsys.readouterr().out.splitlines()[-1].split()
    assert recall[0] == "test_recall" and recall[1::2] == list(EMOTIONS)
    assert all(0 <= float(r) <= 1 for r in recall[2::2])


def test_train_command_line_reports_bad_data_in_one_line(tmp_path, capsys):
    from training.commands.train import main as train_main

    assert train_main(["--model", "baseline_cnn", "--data", str(tmp_path / "missing.npz"),
                       "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.npz" in err and "\n" not in err


def test_choose_tta_picks_on_val_and_the_card_stays_reproducible(tmp_path):
    from training.commands.choose_tta import choose_tta
    from training.data import load_dataset
    from training.evaluation import evaluate_weights, headline

    data_path = stripes_npz(tmp_path / "s.npz", per_class_train=4)
    recipe = resolve_recipe("baseline_cnn", "best", overrides={"input_size": 32, "epochs": 1, "batch_size": 14,
                                                               "architecture.widths": [8, 8, 8]})
    train(RunConfig(model="baseline_cnn", data=str(data_path), out=str(tmp_path / "run"), device="cpu",
                    progress=False, runtime=False), recipe)
    weights = tmp_path / "run" / "baseline_cnn.safetensors"
    data = load_dataset(data_path)
    card = choose_tta(weights, data)
    choice = card["test_time_augmentation_choice"]
    expected = "hflip" if choice["val_accuracy"]["hflip"] > choice["val_accuracy"]["none"] else "none"
    assert card["test_time_augmentation"] == choice["chosen"] == expected
    assert json.loads(weights.with_suffix(".json").read_text())["test_time_augmentation"] == expected
    measured = headline(evaluate_weights(weights, data))  # no override: follows the rewritten card
    assert all(card["metrics"][k] == v for k, v in measured.items())


def test_benchmark_times_resnet_stems_and_sizes(tmp_path):
    from training.commands.benchmark import main

    out = tmp_path / "bench.json"
    assert main(["--models", "resnet50", "--steps", "1", "--batch-size", "2", "--sizes", "32", "48",
                 "--stem-strides", "4", "2", "--channels-last-only", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    configs = [(r["input_size"], r["architecture"]["stem_stride"]) for r in rows]
    assert list(dict.fromkeys(configs)) == [(32, 4), (48, 4), (32, 2), (48, 2)]
    # bf16 is timed beside fp32 where this CPU runs it natively (precision.py), not where it is emulated.
    from training.precision import cpu_runs_bf16_natively

    expected = {"fp32 channels_last"} | ({"bf16 channels_last"} if cpu_runs_bf16_natively() else set())
    assert {r["variant"] for r in rows} == expected
