"""Smoke test: the real app in a subprocess, on the xcb platform under Xvfb, with a video file.

This catches what offscreen tests cannot: OpenCV's bundled Qt plugins clashing
with PySide6's, missing xcb libraries, and overlays that never reach the screen.
"""

import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fer_desktop.overlay import COLORS_BGR

pytestmark = pytest.mark.slow


@pytest.fixture
def xvfb_display():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb): the real-window smoke test needs it")
    read_fd, write_fd = os.pipe()
    # -displayfd: Xvfb picks a free display number itself and writes it to the pipe when ready.
    command = ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"]
    server = subprocess.Popen(command,
                              pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail(f"Xvfb did not start: {server.stderr.read().decode(errors='replace')[-500:]}")
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()


def run_app(display, tmp_path, video, weights_dir, *extra):
    """The app on xcb until 5 results with faces; returns (screenshot, labels of the last result, log)."""
    shot = tmp_path / "window.png"
    env = dict(os.environ)
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", FER_DESKTOP_SMOKE_SCREENSHOT=str(shot),
               FER_DESKTOP_SMOKE_RESULTS="5", FER_DESKTOP_SMOKE_TIMEOUT="150")
    for var in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR", "WAYLAND_DISPLAY"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "fer_desktop", "--source", str(video),
         "--weights-dir", str(weights_dir), "--model", "baseline_cnn", "--device", "cpu", *extra],
        env=env, capture_output=True, text=True, timeout=180)
    log = (proc.stdout + proc.stderr)[-3000:]
    assert "Could not load the Qt platform plugin" not in log, log
    assert proc.returncode == 0, log
    assert shot.is_file(), log
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 600
    labels = proc.stdout.split("last:")[-1].split()
    assert labels, log
    return image, labels, log


def colourful_pixels(image) -> int:
    """Pixels far from grey: the test video is grey, so these are overlays."""
    video = image[:, : int(image.shape[1] * 0.6)].astype(np.int16)  # the video is the window's left part
    # A heat map blended at 45 % over grey is at least 0.45 * 128 = 57 away from grey.
    return int(((video.max(axis=2) - video.min(axis=2)) > 40).sum())


def test_real_window_on_xcb_draws_overlays(xvfb_display, tmp_path, grey_group_video, cnn_weights_dir):
    image, labels, log = run_app(xvfb_display, tmp_path, grey_group_video, cnn_weights_dir)
    # The label pills are filled with the emotion's colour, which the grey video of faces does not contain.
    video = image[:, : int(image.shape[1] * 0.6)].astype(np.int16)
    for label in set(labels):
        color = np.array(COLORS_BGR[label], np.int16)
        matches = int((np.abs(video - color).max(axis=2) <= 3).sum())
        assert matches >= 300, f"too few {label} overlay pixels ({matches}) in the screenshot; {log}"
    # Without maps, colour is confined to boxes, pills and bars.
    assert colourful_pixels(image) < 15000, log


def test_real_window_on_xcb_draws_explanation_maps(xvfb_display, tmp_path, grey_group_video, cnn_weights_dir):
    image, _, log = run_app(xvfb_display, tmp_path, grey_group_video, cnn_weights_dir, "--explain")
    # Two faces' crops, each over 150 px square on screen, covered by a heat map.
    assert colourful_pixels(image) >= 35000, log
