"""Where fer-predict's records go: a table on stdout, a JSON list, or a CSV file.

Each file is ``start()``, ``frame()`` per frame, then ``end()``, or ``abort()``
when an error stops it after ``start()``; ``close()`` ends the output.
``extra`` holds the record's further fields (JSON names and values). The
annotated copies are written by ``predict_annotated.py``.
"""

import csv
import json

from fer_desktop.emotions import EMOTIONS
from fer_desktop.predict_status import InputError, whole

CSV_HEADER = ["path", "frame", "face", "x", "y", "w", "h", "score", "label", "confidence", *EMOTIONS]


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def _size(wh) -> str:
    return f"{wh[0]}x{wh[1]}"


class TableSink:
    """Readable rows on stdout, streamed as files are processed."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.kind, self.info = "", {}

    def start(self, path: str, kind: str, info: dict) -> None:
        self.kind, self.info = kind, info
        details = [kind, _size(info["size"])] + ([f"{info['fps']:.3g} fps"] if info.get("fps") else [])
        print(f"{path} ({', '.join(details)})", file=self.stream)
        print(f"  {'frame':>5} {'face':>4} {'box x,y,w,h':>20} {'score':>5}  {'label':<8} {'conf':>4}  "
              + " ".join(f"{e[:5]:>5}" for e in EMOTIONS), file=self.stream)

    def frame(self, path: str, index: int, result) -> None:
        if not result.faces:
            print(f"  {index:>5} {'-':>4} {'no face found':>20}", file=self.stream)
        for k, face in enumerate(result.faces):
            b = face.box
            score = "whole" if result.whole_image else f"{b.score:.2f}"
            print(f"  {index:>5} {k:>4} {f'{b.x},{b.y},{b.w},{b.h}':>20} {score:>5}  {face.label:<8} "
                  f"{100 * face.confidence:3.0f}%  " + " ".join(f"{p:5.2f}" for p in face.probs),
                  file=self.stream)
        if result.whole_image:
            print("        no face detected: the whole image was classified as one face", file=self.stream)

    def end(self, path: str, frames: int, faces: int, extra: dict) -> None:
        annotated = extra.get("annotated")
        if annotated:
            note = ""
            if annotated.get("shrunk_from"):
                note = f" ({_size(annotated['size'])}, shrunk from {_size(annotated['shrunk_from'])})"
            print(f"  annotated copy: {annotated['path']}{note}", file=self.stream)
        if self.kind == "video":
            declared = self.info.get("frames_declared")
            read = f"{frames} of {declared}" if declared and declared != frames else f"{frames}"
            print(f"  -> {read} frame(s) read, {faces} face(s)\n", file=self.stream)

    def abort(self, message: str) -> None:
        pass  # the message is on stderr

    def close(self) -> None:
        self.stream.flush()


class CsvSink:
    def __init__(self, path: str) -> None:
        try:
            self.file = open(path, "w", newline="", encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot write the CSV file ({exc.strerror or exc})") from None
        self.writer = csv.writer(self.file)
        self.writer.writerow(CSV_HEADER)

    @whole
    def start(self, path, kind, info) -> None:
        pass

    @whole
    def frame(self, path: str, index: int, result) -> None:
        if not result.faces:  # no face found: one row with empty face fields
            self.writer.writerow([path, index] + [""] * (len(CSV_HEADER) - 2))
        for k, face in enumerate(result.faces):
            b = face.box
            score = "" if result.whole_image else f"{b.score:.4f}"
            self.writer.writerow([path, index, k, b.x, b.y, b.w, b.h, score, face.label,
                                  _fmt(face.confidence), *map(_fmt, face.probs)])

    @whole
    def end(self, path, frames, faces, extra) -> None:
        self.file.flush()

    @whole
    def abort(self, message: str) -> None:
        self.file.flush()

    @whole
    def close(self) -> None:
        self.file.close()


class JsonSink:
    """One JSON list, written as it goes: nothing of a video is held until its end.

    An image's record is written when it is done; a video's is opened at its start,
    its frames follow one a line as they are processed, and its closing fields
    (``frames_read``, ``frames_declared``, ``annotated``) come after them. A record
    stopped by an error gets an ``error`` field, so the list always stays valid JSON.
    """

    def __init__(self, stream) -> None:
        self.stream = stream
        self.records = 0
        self.image: dict | None = None  # the image record being made
        self.video_frames: int | None = None  # frames written of the open video record
        self.stream.write("[")

    @staticmethod
    def _faces(result) -> list[dict]:
        return [{"box": [face.box.x, face.box.y, face.box.w, face.box.h],
                 "score": None if result.whole_image else round(face.box.score, 4),
                 "label": face.label, "confidence": round(face.confidence, 4),
                 "probabilities": {e: round(float(p), 4) for e, p in zip(EMOTIONS, face.probs)}}
                for face in result.faces]

    def _new_record(self) -> None:
        self.stream.write(",\n" if self.records else "\n")
        self.records += 1

    @whole
    def start(self, path: str, kind: str, info: dict) -> None:
        record = {"path": path, "kind": kind, **info}
        if kind == "video":
            self._new_record()
            self.stream.write(json.dumps(record)[:-1] + ', "frames": [')
            self.video_frames = 0
        else:
            self.image = record

    @whole
    def frame(self, path: str, index: int, result) -> None:
        if self.video_frames is not None:
            self.stream.write(("\n  " if self.video_frames == 0 else ",\n  ")
                              + json.dumps({"frame": index, "faces": self._faces(result)}))
            self.stream.flush()  # a reader (a pipe) gets each frame as it is done
            self.video_frames += 1
        else:
            self.image["faces"] = self._faces(result)
            self.image["whole_image"] = bool(result.whole_image)

    def _finish(self, fields: dict) -> None:
        if self.video_frames is not None:
            closing = json.dumps(fields)[1:]  # '"key": value, ...}' or '}'
            self.stream.write(("\n ]" if self.video_frames else "]") + (", " + closing if fields else "}"))
            self.video_frames = None
        elif self.image is not None:
            self._new_record()
            self.stream.write(json.dumps({**self.image, **fields}))
            self.image = None
        self.stream.flush()

    @whole
    def end(self, path, frames, faces, extra) -> None:
        if self.video_frames is not None:
            extra = {"frames_read": frames, **extra}
        self._finish(extra)

    @whole
    def abort(self, message: str) -> None:
        self._finish({"error": message})

    @whole
    def close(self) -> None:
        self.abort("stopped before the end of the file")  # Ctrl-C or a bug: keep the JSON valid
        self.stream.write("\n]\n")
        self.stream.flush()

