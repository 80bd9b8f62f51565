"""Photo mode of the main window: open an image, show every face found in it in place of
the video, and go back to live video.

A mixin of ``MainWindow``: it uses the window's session, view, banner, side panel and
status bar, and its ``_mode`` ("live" or "image") and ``_selected`` face.
"""

from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFileDialog

from fer_desktop.image_io import IMAGE_SUFFIXES


class PhotoModeMixin:
    def _init_photo_mode(self) -> None:
        self._mode = "live"  # or "image" while an opened image is shown
        self.last_image_result = None

    @Slot()
    def _choose_image(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", "",
                                              f"Images ({patterns});;All files (*)")
        if path:
            self.open_image(path)

    def open_image(self, path) -> None:
        """Label every face of the image at ``path``; the result replaces the video until "Back to live"."""
        self.statusBar().showMessage(f"Looking for faces in {Path(path).name}…")
        self.session.open_image(path)

    @Slot(object)
    def _on_image(self, result) -> None:
        self.statusBar().clearMessage()
        if result.error:
            self.banner.show_message(result.error, origin="image")
            return
        self.last_image_result = result
        self._mode = "image"
        self.session.close_source(timeout=0)  # release the camera while a photo is shown
        self.live_action.setVisible(True)
        self.side_panel.show_mode("image")  # a photo has no history: the video's is gone with it
        self._timeline_key = None
        self._selected = None
        self.view.set_frame(result.image)
        maps = dict(enumerate(result.maps)) if result.maps is not None else None
        self.view.set_faces(result.faces, (result.image.shape[1], result.image.shape[0]), maps,
                            whole_image=result.whole_image)
        self._set_faces(result.faces)
        self._report_image(result)

    def _report_image(self, result) -> None:
        name = Path(result.path).name
        if result.whole_image:
            self.banner.show_message(f"No face found in {name}: the whole image was classified as one face.",
                                     level="info", origin="image")
        elif not result.faces:
            self.banner.show_message(f"No face found in {name}.", level="info", origin="image")
        else:
            self.banner.clear_message("image")
            n = len(result.faces)
            self.statusBar().showMessage(f"{name}: {n} face{'s' if n != 1 else ''} found")

    def _enter_live(self) -> None:
        if self._mode == "image":
            self._mode = "live"
            self.banner.clear_message("image")
            self.live_action.setVisible(False)
            self.side_panel.show_mode("live")

    @Slot()
    def back_to_live(self) -> None:
        self.set_source(self._source_spec)
