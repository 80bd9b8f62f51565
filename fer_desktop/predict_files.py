"""fer-predict's labelling of one file, through the app's ``FramePipeline``.

Images: tiled detection, boxes given in the file's own pixels. Videos: every
frame, the faces of ``BATCH_FRAMES`` frames classified in one forward pass.
Records go to a sink (``predict_sinks.py``), copies to ``predict_annotated.py``.
"""

from pathlib import Path

from fer_desktop.predict_annotated import AnnotatedCopies
from fer_desktop.predict_inputs import ends_early, open_video
from fer_desktop.predict_status import InputError, OutputError, stop_if_interrupted

BATCH_FRAMES = 16  # video frames whose faces share one forward pass


class Predictor:
    def __init__(self, detector, classifier, annotate_dir: Path | None, tiled_video: bool = False,
                 explain: str | None = None, whole_image: bool = False, inputs=()) -> None:
        from fer_desktop.pipeline import FramePipeline

        self.pipeline = FramePipeline(detector, classifier)
        self.annotated = None if annotate_dir is None else AnnotatedCopies(annotate_dir, classifier, explain,
                                                                           inputs)
        self.tiled_video = tiled_video
        self.whole_image = whole_image  # classify any image without a detected face as a whole

    def image(self, path: Path, sink) -> list[InputError]:
        """Label one image; the problems that did not stop it (none for images)."""
        from fer_desktop.image_io import ImageError, load_image
        from fer_desktop.pipeline import FaceResult, FrameResult, looks_like_face_crop

        try:
            loaded = load_image(path)
        except ImageError as exc:
            raise InputError(str(exc)) from None
        frame, (width, height) = loaded.image, loaded.original_size
        fallback = self.whole_image or looks_like_face_crop(width, height)
        result = self.pipeline(frame, whole_image_fallback=fallback, tiled=True)
        # Boxes in the file's pixels (the image may have been shrunk to be read).
        shown = FrameResult([FaceResult(loaded.to_original(f.box), f.probs) for f in result.faces],
                            result.whole_image)
        sink.start(str(path), "image", {"size": [width, height]})
        sink.frame(str(path), 0, shown)
        extra = {}
        if self.annotated is not None:
            out = self.annotated.write_image(path, frame, result)
            extra["annotated"] = {"path": str(out), "size": [frame.shape[1], frame.shape[0]]}
            if loaded.shrunk:  # drawn at the working size: say so
                extra["annotated"]["shrunk_from"] = [width, height]
        sink.end(str(path), 1, len(result.faces), extra)
        return []

    def video(self, path: Path, sink) -> list[InputError]:
        """Label every frame of a video; the problems that did not stop it (it ended early, its
        annotated copy could not be written), reported once its record is complete."""
        video = open_video(path)
        copy = None
        if self.annotated is not None:
            try:
                copy = self.annotated.video(path, video.fps, (video.first.shape[1], video.first.shape[0]))
            except OutputError:
                video.close()
                raise
        sink.start(str(path), "video", {"size": list(video.size), "fps": round(video.fps, 3),
                                        "frames_declared": video.declared})
        frames = faces = 0
        batch: list = []  # (index, frame or None, FoundFaces) of up to BATCH_FRAMES frames
        try:
            for frame in video.frames():
                stop_if_interrupted()
                found = self.pipeline.find(frame, tiled=self.tiled_video)
                batch.append((frames, frame if copy is not None else None, found))
                frames += 1
                if len(batch) >= BATCH_FRAMES:
                    faces += self._label_batch(path, batch, sink, copy)
            faces += self._label_batch(path, batch, sink, copy)
        finally:
            video.close()
            if copy is not None:
                copy.close()
        problems: list[InputError] = []
        extra = {}
        if copy is not None:
            if copy.complete(frames):
                extra["annotated"] = {"path": str(copy.path)}
            else:
                problems.append(OutputError(f"{copy.path}: the annotated video could not be written "
                                            "completely (disk full, or the folder not writable?)"))
        if ends_early(frames, video.declared):
            problems.append(InputError(f"{path}: the video ends early: {frames} of the {video.declared} "
                                       "frames it declares were read (a truncated or damaged file)"))
        sink.end(str(path), frames, faces, extra)
        return problems

    def _label_batch(self, path: Path, batch: list, sink, copy) -> int:
        """One forward pass for the faces of a batch of frames, then their records and copies;
        empties ``batch`` and returns how many faces it held."""
        import numpy as np

        results = self.pipeline.classify([found for *_, found in batch])
        crops = [found.crops for *_, found in batch if len(found.crops)]
        maps = self.annotated.maps(np.concatenate(crops)) if crops and copy is not None else None
        start = 0
        for (index, frame, _), result in zip(batch, results):
            n = len(result.faces)
            sink.frame(str(path), index, result)
            if copy is not None:
                copy.write(frame, result, maps[start:start + n] if maps is not None else None)
            start += n
        batch.clear()
        return start
