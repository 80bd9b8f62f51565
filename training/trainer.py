"""One training run, from the data to the weights, card, metrics and figures: the epochs left to run,
each checkpointed, within a time budget, then the weights measured through the app's classifier
(``python -m training train`` describes the outputs)."""

import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fer_desktop.models import get_spec
from fer_desktop.weights import save_weights
from training.cards import training_card
from training.checkpoint import cpu_state_dict
from training.data import FaceSplits, limit_splits, load_dataset
from training.distributed import Distributed
from training.engine import loss_and_accuracy, predict_logits, train_one_epoch
from training.precision import describe_device
from training.recipes import Recipe
from training.schedule import lr_factor
from training.session import RunConfig, Session, fit_to_budget, seed_everything, start_session, training_faces

# Time kept back from a budget for the final evaluation, weights and figures.
FINALISE_RESERVE_S = 15.0
# The teachers' probabilities, kept beside the checkpoint for --resume.
TEACHER_CACHE_NAME = "teacher_probs.npz"


def _progress_bar(run: RunConfig, total: int, desc: str):
    if not run.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=True, dynamic_ncols=True, file=sys.stderr)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def train(run: RunConfig, recipe: Recipe, data: FaceSplits | None = None) -> dict:
    """Run training to the end (or to ``stop_after``/the budget) and return the metrics written."""
    started = time.perf_counter()
    deadline = started + run.budget_s - min(FINALISE_RESERVE_S, 0.2 * run.budget_s) if run.budget_s else None
    if run.threads:
        torch.set_num_threads(run.threads)
    dist, device = Distributed.from_env(run.device)
    if recipe.batch_size % dist.world_size:
        raise ValueError(f"the batch size ({recipe.batch_size}) is the global batch: it must be a multiple "
                         f"of the number of processes ({dist.world_size})")
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(run.seed, run.deterministic)
    data = prepare_data(run, recipe, data, device, out)
    session = start_session(run, recipe, dist, device, out)
    if run.resume and session.checkpoint_path.is_file():
        session.resume()
    config = {"run": dataclasses.asdict(run), "recipe": recipe.to_dict(), "init": session.init,
              "data": {"source": Path(run.data).name, "sizes": data.sizes()}, "device": describe_device(device),
              "processes": dist.world_size, "precision": session.feed.precision, "torch": torch.__version__}
    if dist.is_main:
        _write_json(out / "config.json", config)
    return fit(session, data, out, deadline)


def prepare_data(run: RunConfig, recipe: Recipe, data: FaceSplits | None, device: torch.device,
                 out: Path) -> FaceSplits:
    """The run's splits: loaded unless given, limited, and with the teachers' targets when distilling."""
    if data is None:
        data = load_dataset(run.data, seed=run.seed, labels=run.labels)
    if data.labels != run.labels:
        raise ValueError(f"the data given has {data.labels} labels, the run asks for {run.labels}")
    if run.limit:
        data = limit_splits(data, run.limit, run.seed)
    if run.distill:
        from training.distill import with_teacher

        data = with_teacher(data, run.distill, recipe.distill_alpha, str(device),
                            cache=out / TEACHER_CACHE_NAME)
    return data


def fit(s: Session, data: FaceSplits, out: Path, deadline: float | None) -> dict:
    """The epochs left to run, each checkpointed, then the weights and card (``finalise``)."""
    run, recipe, state = s.run, s.recipe, s.state
    forward_model = torch.compile(s.train_model) if run.compile else s.train_model
    train_x, train_y = training_faces(data.train_x, s.device, run), data.train_y.to(s.device)
    train_soft = data.train_soft.to(s.device) if data.train_soft is not None else None
    batch = min(recipe.batch_size, len(train_y))
    steps_per_epoch = max(1, len(train_y) // batch)
    epochs_this_run = 0
    epoch_costs: list[float] = []  # seconds per epoch of this invocation, for fitting to the budget

    def lr_at(step: int) -> float:
        return recipe.lr * lr_factor(step, steps_per_epoch, state["epochs_planned"], recipe.warmup_epochs,
                                     recipe.schedule, recipe.restart_epochs)

    while state["epoch"] < state["epochs_planned"]:
        epoch = state["epoch"] + 1
        epoch_start = time.perf_counter()
        desc = f"{run.model} epoch {epoch}/{state['epochs_planned']}"
        bar = _progress_bar(run, steps_per_epoch * batch, desc) if s.dist.is_main else None
        stats, state["step"] = train_one_epoch(forward_model, train_x, train_y, recipe, s.feed, s.optimizer,
                                               lr_at, state["step"], s.data_gen, s.aug_gen, bar, deadline, s.dist,
                                               train_soft)
        # Every process evaluates the whole validation set with the same weights (DDP keeps them equal).
        val_logits = predict_logits(s.model if s.dist.enabled else forward_model, data.val_x, s.feed,
                                    recipe.tta)
        val_loss, val_acc = loss_and_accuracy(val_logits, data.val_y)
        epoch_s = time.perf_counter() - epoch_start
        if bar is not None:
            bar.set_postfix(loss=f"{stats.loss:.3f}", img_s=f"{stats.images_per_s:.0f}", val_acc=f"{val_acc:.3f}")
            bar.close()
        elif s.dist.is_main:  # one line per epoch keeps logs of unattended runs short
            print(f"{run.model} epoch {epoch}/{state['epochs_planned']}: loss {stats.loss:.3f}, "
                  f"val {val_acc:.4f}, {stats.images_per_s:.0f} img/s, {epoch_s:.1f} s", file=sys.stderr)
        state["history"].append({
            "epoch": epoch, "train_loss": stats.loss, "train_accuracy": stats.accuracy, "val_loss": val_loss,
            "val_accuracy": val_acc, "lr": lr_at(max(state["step"] - 1, 0)), "epoch_s": round(epoch_s, 2),
            "images_per_s": round(stats.images_per_s, 1)})
        state["epoch"] = epoch
        state["training_time_s"] += epoch_s
        epochs_this_run += 1
        if recipe.select == "best" and (state["best"] is None or val_acc > state["best"]["val_accuracy"]):
            state["best"] = {"epoch": epoch, "val_accuracy": val_acc, "model": cpu_state_dict(s.model)}
        s.checkpoint()
        if deadline is not None:
            # Next epoch's cost: training at its steady pace, plus evaluation and checkpoint as measured.
            epoch_costs.append(stats.steady_seconds + (time.perf_counter() - epoch_start - stats.seconds))
            fit_to_budget(s, epoch_costs, deadline)
        if run.stop_after is not None and epochs_this_run >= run.stop_after \
                and state["epoch"] < state["epochs_planned"]:
            return {"stopped_after_epoch": state["epoch"]}
    if not s.dist.is_main:
        return {}
    return finalise(run, recipe, s.model, data, state, s.init, s.device, out, s.feed.precision,
                    s.dist.world_size)


def finalise(run: RunConfig, recipe: Recipe, model, data: FaceSplits, state: dict, init: str,
             device: torch.device, out: Path, precision: str = "fp32", processes: int = 1) -> dict:
    """Write the weights and card, then measure them through the app's classifier."""
    from training.evaluation import evaluate_weights, headline

    selected = state["epoch"]
    if recipe.select == "best" and state["best"] is not None:
        model.load_state_dict(state["best"]["model"])
        selected = state["best"]["epoch"]
    card = training_card(run, recipe, data, state, init, selected, device, precision, processes)
    weights_path = save_weights(model, card, out / f"{run.model}.safetensors")
    result = evaluate_weights(weights_path, data, ("val", "test"), device=str(device))
    card["metrics"] = {**headline(result), "selected_val_accuracy_fp32": state["best"]["val_accuracy"]
                       if state["best"] else None, **other_labels_accuracy(run, weights_path, device)}
    saved = json.loads(weights_path.with_suffix(".json").read_text(encoding="utf-8"))
    saved["metrics"] = card["metrics"]
    if "lineage" in card:  # this cycle's own accuracy, beside the chain's earlier ones
        card["lineage"]["chain"][-1].update(val_accuracy=card["metrics"]["val_accuracy"],
                                            test_accuracy=card["metrics"]["test_accuracy"])
        saved["lineage"] = card["lineage"]
    _write_json(weights_path.with_suffix(".json"), saved)

    metrics = {"model": run.model, "recipe": recipe.name, **card["metrics"], "epochs": state["epoch"],
               "selected_epoch": selected, "training_time_s": card["training_time_s"],
               "val": {k: v for k, v in result["val"].items()}, "test": {k: v for k, v in result["test"].items()},
               "history": state["history"]}
    _write_json(out / "metrics.json", metrics)
    write_figures(run, recipe, data, state["history"], result, out)
    if run.runtime:  # what the app runs on the CPU: ONNX Runtime, int8 where it keeps accuracy
        from training.runtime_export import export as export_runtime

        runtime = export_runtime(weights_path, data)
        print(f"{run.model}: runtime file {runtime['file']} ({runtime['precision']}, PublicTest "
              f"{runtime['metrics']['val_accuracy']:.4f})", file=sys.stderr)
    if run.export:
        export = Path(run.export)
        export.mkdir(parents=True, exist_ok=True)
        for file in (weights_path, weights_path.with_suffix(".json"), weights_path.with_suffix(".onnx")):
            if file.exists():
                shutil.copy2(file, export / file.name)
    print(f"{run.model}: val {metrics['val_accuracy']:.4f}  test {metrics['test_accuracy']:.4f}  "
          f"({state['epoch']} epochs, {card['training_time_s']:.0f} s) -> {weights_path}", file=sys.stderr)
    return metrics


def write_figures(run: RunConfig, recipe: Recipe, data: FaceSplits, history: list[dict], result: dict,
                  out: Path) -> None:
    """The confusion matrix, learning curves and sample predictions of a finished run."""
    from training.reports import plot_confusion_matrix, plot_learning_curves, plot_sample_predictions

    title = f"{get_spec(run.model).title}, {recipe.name} recipe"
    plot_confusion_matrix(np.asarray(result["test"]["confusion_matrix"]), out / "confusion_matrix.png",
                          f"{title}: test (PrivateTest) accuracy {result['test']['accuracy']:.1%}")
    plot_learning_curves(history, out / "learning_curves.png", title)
    plot_sample_predictions(data.test_x.numpy(), data.test_y.numpy(), result["probs"]["test"],
                            out / "sample_predictions.png", f"{title}: test faces", seed=run.seed)


def other_labels_accuracy(run: RunConfig, weights_path: Path, device: torch.device) -> dict:
    """Test accuracy under the other label set (FER+ beside FER-2013's), where the data has both."""
    other = "fer2013" if run.labels.startswith("ferplus") else "ferplus"
    try:
        data = load_dataset(run.data, labels=other)
    except (ValueError, FileNotFoundError):
        return {}  # no FER+ votes in this dataset
    if run.limit:
        data = limit_splits(data, run.limit, run.seed)
    from training.evaluation import evaluate_weights

    result = evaluate_weights(weights_path, data, ("test",), device=str(device))
    return {f"{other}_test_accuracy": result["test"]["accuracy"]}
