"""The inference thread with real video files, real mediapipe and tiny (untrained) weights."""

import shutil
import threading
import time

import conftest
import cv2
import pytest

from fer_desktop.capture import FrameSource
from fer_desktop.inference import InferenceWorker

TIMEOUT = 60  # generous: the first model load imports torch on a slow machine


class Recorder:
    def __init__(self):
        self.results, self.images, self.events = [], [], []
        self.lock = threading.Lock()

    def result(self, r):
        with self.lock:
            self.results.append(r)

    def image(self, r):
        with self.lock:
            self.images.append(r)

    def event(self, e):
        with self.lock:
            self.events.append(e)

    def kinds(self, kind):
        with self.lock:
            return [e for e in self.events if e.kind == kind]


def wait_for(predicate, timeout=TIMEOUT):
    return conftest.wait_for(predicate, timeout)


@pytest.fixture
def running(tiny_weights_dir, group_video):
    rec = Recorder()
    source = FrameSource(group_video).start()
    worker = InferenceWorker(model="baseline_cnn", device="cpu", weights_dir=tiny_weights_dir,
                             on_result=rec.result, on_image=rec.image, on_event=rec.event)
    worker.set_source(source)
    worker.start()
    yield rec, source, worker
    assert worker.stop(timeout=2.0)
    assert source.stop(timeout=2.0)


def test_results_for_every_face_of_the_newest_frames(running):
    rec, source, worker = running
    assert wait_for(lambda: len(rec.results) >= 5), [e.message for e in rec.events]
    results = list(rec.results)
    assert all(r.model == "baseline_cnn" and r.device == "cpu" for r in results)
    ids = [r.frame_id for r in results]
    assert ids == sorted(set(ids))  # never an old frame, never one twice
    assert max(len(r.faces) for r in results) == 2
    face = results[-1].faces[0]
    assert face.probs.shape == (7,) and abs(float(face.probs.sum()) - 1) < 1e-4
    assert set(results[-1].timings_ms) >= {"detect", "crop", "infer", "total"}
    assert results[-1].latency_ms > 0 and results[-1].frame_size == (640, 360)
    assert rec.kinds("model")[0].model == "baseline_cnn"


def test_switching_model_keeps_results_coming(running):
    rec, source, worker = running
    assert wait_for(lambda: len(rec.results) >= 2)
    worker.request_model("resnet50_cbam")
    assert worker.loading == "resnet50_cbam"
    assert wait_for(lambda: worker.model_name == "resnet50_cbam")
    n = len(rec.results)
    assert wait_for(lambda: len(rec.results) >= n + 2)
    with rec.lock:
        models = [r.model for r in rec.results]
    # The old model served until the new one was ready, then the new one took over.
    assert models[0] == "baseline_cnn" and models[-1] == "resnet50_cbam"
    assert models == sorted(models, key=lambda m: m == "resnet50_cbam")


def test_bad_weights_become_a_message_and_the_old_model_keeps_serving(running, tmp_path, tiny_weights_dir):
    rec, source, worker = running
    assert wait_for(lambda: len(rec.results) >= 1)
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(tiny_weights_dir / "attention_cnn.json", bad / "attention_cnn.json")
    (bad / "attention_cnn.safetensors").write_bytes(b"\x00garbage" * 100)
    worker.weights_dir = bad
    worker.request_model("attention_cnn")
    assert wait_for(lambda: rec.kinds("error"))
    message = rec.kinds("error")[0].message
    assert "attention_cnn.safetensors" in message and "\n" not in message
    n = len(rec.results)
    assert wait_for(lambda: len(rec.results) > n)
    assert worker.model_name == "baseline_cnn" and worker.running


def test_missing_weights_message_names_the_train_command(tmp_path, face_video, monkeypatch):
    # Hide the shipped weights (checkout and package) so the model is missing whatever ships.
    monkeypatch.delenv("FER_DESKTOP_WEIGHTS", raising=False)
    monkeypatch.setattr("fer_desktop.weights._PACKAGE_DIR", tmp_path / "pkg" / "fer_desktop")
    rec = Recorder()
    worker = InferenceWorker(model="resnet50", device="cpu", weights_dir=tmp_path, on_event=rec.event)
    worker.start()
    try:
        assert wait_for(lambda: rec.kinds("error"))
        assert "training.train --model resnet50" in rec.kinds("error")[0].message
        assert worker.running
    finally:
        assert worker.stop(timeout=2.0)


def test_open_image_finds_every_face_and_reports_bad_files(running, tmp_path, group_image):
    rec, source, worker = running
    assert wait_for(lambda: worker.model_name == "baseline_cnn")
    group = tmp_path / "group.png"
    cv2.imwrite(str(group), group_image)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), group_image[:100, :100] * 0 + 128)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not an image")
    for path in (group, blank, junk):
        worker.submit_image(path)
    assert wait_for(lambda: len(rec.images) == 3)
    by_name = {r.path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]: r for r in rec.images}
    assert len(by_name["group.png"].faces) == 8 and not by_name["group.png"].whole_image
    assert by_name["blank.png"].whole_image and len(by_name["blank.png"].faces) == 1
    assert by_name["notes.jpg"].error and "notes.jpg" in by_name["notes.jpg"].error
    assert worker.running


def test_smoothing_toggle(running):
    rec, source, worker = running
    worker.set_smoothing(False)
    assert wait_for(lambda: len(rec.results) >= 3)
    n = len(rec.results)
    assert wait_for(lambda: len(rec.results) >= n + 2)
    face = rec.results[-1].faces[0]
    assert (face.probs == face.raw_probs).all()
    assert worker.smoothing is False


def test_ten_rapid_switches_load_one_at_a_time_and_only_the_last_serves(running):
    import gc

    from fer_desktop.torch_classifier import Classifier

    rec, source, worker = running
    assert wait_for(lambda: worker.model_name == "baseline_cnn")
    names = ["resnet50", "attention_cnn", "resnet50_cbam", "baseline_cnn"] * 2 + ["resnet50", "attention_cnn"]
    before = set(threading.enumerate())
    loaders = []
    for name in names:  # as fast as a scroll wheel over the combo
        worker.request_model(name)
        loaders.append(len(set(threading.enumerate()) - before))
    n_model_events = len(rec.kinds("model"))
    assert max(loaders) <= 1  # old code: one loader thread per request, all building at once
    assert wait_for(lambda: worker.model_name == "attention_cnn" and worker.loading is None)
    served = [e.model for e in rec.kinds("model")]
    # Only the first request (taken before the others came) and the last may have been swapped in.
    assert served[-1] == "attention_cnn" and len(served) - 1 <= 2, served
    n = len(rec.results)
    assert wait_for(lambda: len(rec.results) >= n + 2) and rec.results[-1].model == "attention_cnn"
    assert n_model_events <= len(rec.kinds("model"))
    assert not rec.kinds("error") and worker.running
    gc.collect()
    assert sum(type(o) is Classifier for o in gc.get_objects()) <= 2  # superseded models are freed


def test_stop_waits_for_a_loading_model(tiny_weights_dir):
    before = set(threading.enumerate())
    worker = InferenceWorker(device="cpu", weights_dir=tiny_weights_dir).start()
    worker.request_model("resnet50_cbam")
    assert worker.stop(timeout=5.0)
    assert not set(threading.enumerate()) - before  # old code left the loader running torch


class BrokenClassifier:
    """A classifier whose forward pass fails, as a corrupt model or a driver fault would."""

    def __init__(self, real):
        self.real = real
        self.name, self.device, self.title = real.name, real.device, real.title

        self.calls = 0

    def predict(self, faces):
        self.calls += 1
        raise RuntimeError("forward pass failed")


def test_an_error_on_every_frame_is_reported_counted_and_cleared(running):
    rec, source, worker = running
    assert wait_for(lambda: len(rec.results) >= 1)
    real = worker._classifier
    broken = worker._classifier = BrokenClassifier(real)
    assert wait_for(lambda: len(rec.kinds("error")) >= 2, timeout=30)
    errors = [e.message for e in rec.kinds("error")]
    worker._classifier = real
    assert errors[0] == "cannot label frames: forward pass failed"
    assert "(x" in errors[-1], errors
    assert broken.calls >= 3 * len(errors), (broken.calls, errors)  # old code: one event per frame
    assert wait_for(lambda: rec.kinds("cleared"))
    assert worker.running


def test_a_result_listener_that_raises_is_logged_and_inference_goes_on(cnn_weights_dir, face_video, caplog):
    calls = []

    def broken(result):
        calls.append(result)
        raise ValueError("listener bug")

    source = FrameSource(face_video).start()
    worker = InferenceWorker(model="baseline_cnn", device="cpu", weights_dir=cnn_weights_dir, on_result=broken)
    worker.set_source(source)
    worker.start()
    try:
        assert wait_for(lambda: len(calls) >= 3)  # old code: swallowed silently; here: logged, and on it goes
    finally:
        assert worker.stop(timeout=2.0) and source.stop(timeout=2.0)
    assert any("on_result listener failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_an_error_anywhere_in_a_round_is_reported_and_the_loop_goes_on(running):
    rec, source, worker = running
    assert wait_for(lambda: len(rec.results) >= 1)
    real_update = worker._tracker.update
    faults = []

    def update_that_fails_once(*args, **kwargs):  # a fault outside the guarded pipeline call
        if not faults:
            faults.append(1)
            raise RuntimeError("tracker fault\nsecond line")
        return real_update(*args, **kwargs)

    worker._tracker.update = update_that_fails_once
    assert wait_for(lambda: rec.kinds("error"))
    assert [e.message for e in rec.kinds("error")] == ["inference failed: tracker fault"]
    n = len(rec.results)
    # Old code: the exception ended the thread; no more results, and no event said why.
    assert wait_for(lambda: len(rec.results) >= n + 3, timeout=30)
    assert worker.running and rec.kinds("cleared")


def test_results_carry_the_generation_of_their_source(running, face_video):
    rec, source, worker = running
    assert wait_for(lambda: len(rec.results) >= 1)
    first = worker.source_generation
    assert rec.results[-1].source_generation == first
    other = FrameSource(face_video).start()
    try:
        worker.set_source(other)
        assert worker.source_generation == first + 1
        n = len(rec.results)
        assert wait_for(lambda: len(rec.results) >= n + 2)
        assert rec.results[-1].source_generation == first + 1
    finally:
        worker.set_source(source)
        assert other.stop(timeout=2.0)
