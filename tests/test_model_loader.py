"""ModelLoader: the newest request wins, a superseded load is never handed over."""

import threading

import numpy as np

from fer_desktop.model_loader import ModelLoader


class Named:
    """A classifier that only has a name and answers zeros."""

    backend = "onnx"

    def __init__(self, name: str) -> None:
        self.name = name

    def predict(self, faces):
        return np.zeros((len(faces), 7), np.float32)


def test_requests_made_while_loading_replace_each_other():
    reading, release, loaded = threading.Event(), threading.Event(), threading.Event()
    read: list[str] = []

    def load(name):
        read.append(name)
        if name == "first":  # a slow read: the later requests arrive meanwhile
            reading.set()
            release.wait(10)
        return Named(name)

    events = []
    loader = ModelLoader(load, events.append, loaded.set)
    loader.request("first")
    assert reading.wait(10)
    loader.request("second")
    loader.request("third")
    assert loader.loading == "third"
    release.set()
    assert loaded.wait(10)
    assert loader.take().name == "third" and loader.take() is None and loader.loading is None
    assert read == ["first", "third"]  # "second" was replaced before its read began
    assert [e.model for e in events] == ["first", "second", "third"]  # the three "loading" events


def test_a_failed_load_is_one_error_and_nothing_after_stop():
    done = threading.Event()

    def load(name):
        raise OSError("bad file\nsecond line")

    events = []

    def emit(event):
        events.append(event)
        if event.kind == "error":
            done.set()

    loader = ModelLoader(load, emit, lambda: None)
    loader.request("broken")
    assert done.wait(10)
    assert events[-1].kind == "error" and events[-1].message == "bad file" and loader.loading is None
    thread = loader.stop()
    if thread is not None:
        thread.join(10)
    loader.request("after")
    assert loader.loading is None and not loader.running
