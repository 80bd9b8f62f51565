"""Record and Snapshot of the main window: the CSV timeline (and the annotated MP4 beside it)
started and stopped, its failures and summary, and the annotated picture saved as PNG.

A mixin of ``MainWindow``: it uses the window's session, view, banner, status bar and
Record controls (``record_action``, ``record_video_check``, ``record_label``).
"""

import logging
import time
from pathlib import Path

from PySide6.QtCore import Slot

from fer_desktop.recording import AnnotatedVideoRecorder, TimelineRecorder, default_recording_path

log = logging.getLogger(__name__)

VIDEO_CLOSE_S = 5.0  # the longest stopping a recording waits for the MP4's queued frames


class RecordingMixin:
    def _init_recording(self, record_dir) -> None:
        self.record_dir = Path(record_dir) if record_dir else default_recording_path().parent
        self._recorder: TimelineRecorder | None = None
        self._video_recorder: AnnotatedVideoRecorder | None = None
        self._video_warned = False  # the video recorder's error was shown while recording
        self._recording_failure: str | None = None  # why the session stopped the recording
        self.last_recording: Path | None = None
        self.last_video: Path | None = None
        self.last_snapshot: Path | None = None

    @Slot(bool)
    def set_recording(self, on: bool) -> None:
        """Start or stop writing the CSV timeline (``fer_desktop.recording``) into ``record_dir``,
        and the annotated video beside it if "Video" is checked."""
        if on and self._recorder is None and not self._shut_down:
            self._start_recording()
        elif not on and self._recorder is not None:
            recorder, video = self._detach_recording()
            if video is not None:
                video.join(VIDEO_CLOSE_S)
            message, problem = self._recording_summary(recorder, video)
            if problem:
                self.banner.show_message(problem, origin="record")
            self.statusBar().showMessage(message, 10000)
        if self.record_action.isChecked() != (self._recorder is not None):
            self.record_action.setChecked(self._recorder is not None)

    def _start_recording(self) -> None:
        with_video = self.record_video_check.isChecked()
        try:  # a new file: a name already taken (same second) gets -2, -3...
            self._recorder = TimelineRecorder(default_recording_path(self.record_dir),
                                              siblings=(".mp4",) if with_video else ())
        except OSError as exc:
            self.banner.show_message(str(exc), origin="record")
            self.record_action.setChecked(False)
            return
        path = self._recorder.path
        self._video_recorder = None
        self._video_warned = False
        self._recording_failure = None
        if with_video:
            source = self.session.source
            self._video_recorder = AnnotatedVideoRecorder(path.with_suffix(".mp4"),
                                                          fps=source.fps if source else 30.0)
        self.session.start_recording(self._recorder, self._video_recorder)
        self.banner.clear_message("record")
        self.record_label.setText(f"● REC {path.name}")
        self.record_label.setToolTip(str(path) + (" (+ .mp4)" if self._video_recorder else ""))
        self.record_label.show()
        self.record_video_check.setEnabled(False)
        # The REC label names the file (its tooltip the folder): a message beside it would run into it.
        self.statusBar().clearMessage()

    def _detach_recording(self) -> tuple:
        """Stop recording: the CSV is closed, the MP4 asked to finish (the caller joins it).

        Returns (TimelineRecorder, AnnotatedVideoRecorder or None); never raises a write error."""
        self.session.stop_recording()
        recorder, self._recorder = self._recorder, None
        video, self._video_recorder = self._video_recorder, None
        try:
            recorder.close()  # never raises: a write error ends up in recorder.error
        finally:
            if video is not None:
                video.finish()
                self.last_video = video.path if video.written else None
            self.last_recording = recorder.path
            self.record_label.hide()
            self.record_video_check.setEnabled(True)
        return recorder, video

    def _recording_summary(self, recorder, video) -> tuple[str, str | None]:
        """(status bar message, banner message or None) for a recording just stopped."""
        problems = []
        failure = recorder.error or self._recording_failure
        if failure:
            problems.append(f"recording stopped: {failure}; "
                            f"{recorder.saved_rows} rows saved to {recorder.path}")
            message = problems[0]
        else:
            message = f"Recorded {recorder.frames} frames ({recorder.rows} rows) to {recorder.path}"
        if video is not None:
            if video.problem:
                problems.append(video.problem)
            elif video.written:
                message += f" and {video.path.name}"
            if video.dropped:
                message += f" ({video.dropped} video frames dropped)"
        return message, "; ".join(problems) or None

    def _stop_recording_at_exit(self):
        """Every row written so far reaches the disk; returns the MP4 still finishing, or None."""
        if self._recorder is None:
            return None
        recorder, video = self._detach_recording()
        if recorder.error or self._recording_failure:
            log.warning("%s", self._recording_summary(recorder, video)[0])
        return video

    @Slot(object)
    def _on_recording_failed(self, failure) -> None:
        """The session detached a recorder that failed (a full disk): stop, and say what was saved."""
        recorder, why = failure
        if recorder is self._recorder:
            self._recording_failure = why
            self.set_recording(False)

    def _show_recording_progress(self) -> None:
        """The REC label's frame count, and the video recorder's error once (the CSV goes on without it)."""
        if self._recorder is not None:
            self.record_label.setText(f"● REC {self._recorder.path.name}: {self._recorder.frames} frames")
        video = self._video_recorder
        if video is not None and video.error and not self._video_warned:
            self._video_warned = True
            self.banner.show_message(video.error, origin="record")

    @Slot()
    def save_snapshot(self) -> Path | None:
        """Save the frame with its overlays as PNG in ``record_dir``, at the frame's full resolution.

        Drawn by the same renderer as the view, so the file looks like the window."""
        import cv2

        try:
            self.record_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.banner.show_message(f"{self.record_dir}: cannot save the snapshot ({exc.strerror or exc})",
                                     origin="record")
            return None
        picture = self.view.rendered()
        if picture is None:
            self.statusBar().showMessage("Nothing to save yet: no picture is shown", 5000)
            return None
        data = cv2.imencode(".png", picture)[1].tobytes()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1, 1000):
            path = self.record_dir / (f"snapshot-{stamp}.png" if n == 1 else f"snapshot-{stamp}-{n}.png")
            try:
                with open(path, "xb") as f:  # never overwrite an earlier snapshot
                    f.write(data)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                path.unlink(missing_ok=True)  # no half-written picture left behind
                self.banner.show_message(f"{path}: cannot save the snapshot ({exc.strerror or exc})",
                                         origin="record")
                return None
        self.last_snapshot = path
        self.statusBar().showMessage(f"Snapshot saved to {path}", 8000)
        return path
