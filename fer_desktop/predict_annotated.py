"""fer-predict's annotated copies: each input drawn with its faces' boxes and emotions.

Images become ``STEM.annotated.png`` and videos ``STEM.annotated.mp4`` in one
folder, with ``-2``, ``-3`` ... for a name already used in the run: never
overwriting one of its outputs or inputs (names compared case-folded, as
case-insensitive file systems do). ``--explain`` blends each face's explanation
map into the copies.
"""

from pathlib import Path

from fer_desktop.predict_inputs import ends_early
from fer_desktop.predict_status import OutputError


class AnnotatedCopies:
    def __init__(self, folder: Path, classifier, explain: str | None = None, inputs=()) -> None:
        self.folder = folder
        self.classifier = classifier
        self.explain = explain  # None, "gradcam" or "attention": maps in the copies
        # Names taken in the folder, case-folded: this run's outputs, and its inputs that lie there.
        resolved = folder.resolve()
        self._taken = {Path(p).name.casefold() for p in inputs if Path(p).resolve().parent == resolved}

    def maps(self, crops):
        """Explanation maps of face crops, or None when not asked for."""
        if self.explain is None or not len(crops):
            return None
        from fer_desktop.explain import explain

        return explain(self.classifier, crops, self.explain)

    def _path(self, path: Path, suffix: str) -> Path:
        """``STEM.annotated.png``, or ``STEM-2.annotated.png`` ... where this run took the name already."""
        n, name = 1, f"{path.stem}.annotated{suffix}"
        while name.casefold() in self._taken:
            n += 1
            name = f"{path.stem}-{n}.annotated{suffix}"
        self._taken.add(name.casefold())
        return self.folder / name

    def write_image(self, path: Path, frame, result) -> Path:
        """The annotated copy of an image and its ``FrameResult``; returns where it was written."""
        import cv2

        from fer_desktop.overlay import draw_results

        maps = self.maps(result.crops) if result.faces else None
        out = self._path(path, ".png")
        picture = draw_results(frame, result.faces, maps=maps, whole_image=result.whole_image)
        ok, data = cv2.imencode(".png", picture)
        try:
            if not ok:
                raise OSError("encoding failed")
            data.tofile(str(out))
        except OSError as exc:
            raise OutputError(f"{out}: cannot write the annotated image ({exc.strerror or exc})") from None
        return out

    def video(self, path: Path, fps: float, size: tuple[int, int]) -> "AnnotatedVideo":
        """A new annotated copy of the video at ``path`` (``size``: width, height of its frames)."""
        return AnnotatedVideo(self._path(path, ".mp4"), fps, size)


class AnnotatedVideo:
    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import cv2

        self.path = path
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, size)
        if not self._writer.isOpened():
            raise OutputError(f"{path}: cannot write the annotated video")

    def write(self, frame, result, maps=None) -> None:
        from fer_desktop.overlay import draw_results

        self._writer.write(draw_results(frame, result.faces, maps=maps))

    def close(self) -> None:
        self._writer.release()

    def complete(self, frames: int) -> bool:
        """Whether the closed copy opens and holds (about) ``frames`` frames. OpenCV reports no
        failed write: a full disk leaves a cut, unplayable file."""
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            return cap.isOpened() and not ends_early(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), frames)
        finally:
            cap.release()
