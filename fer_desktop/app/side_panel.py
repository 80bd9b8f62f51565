"""The panel beside the video: the selected face (title, bars, hint), its last 30 seconds
(live video only) and every face's probabilities in a table.

The panel only shows what it is given; which face is selected is the window's business.
"""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from fer_desktop.app.colors import EMOTION_COLORS, text_color_on
from fer_desktop.app.emotion_bars import EmotionBars
from fer_desktop.app.timeline import EmotionTimeline
from fer_desktop.emotions import EMOTIONS

HINTS = {"live": "Click a face in the video to select it.",  # by mode: live video or an opened photo
         "image": "Click a face in the photo to select it."}


class SidePanel(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.bars = EmotionBars()
        self.face_title = QLabel("No face yet")
        self.face_title.setStyleSheet("font-weight:600;")
        selected_box = QGroupBox("Selected face")
        sel_layout = QVBoxLayout(selected_box)
        sel_layout.addWidget(self.face_title)
        sel_layout.addWidget(self.bars)
        self.hint_label = QLabel(HINTS["live"])
        self.hint_label.setStyleSheet("color:palette(mid);")
        sel_layout.addWidget(self.hint_label)

        self.table = _faces_table()
        self.timeline = EmotionTimeline()
        self.timeline_box = QGroupBox("Selected face, last 30 s")  # live video only
        timeline_layout = QVBoxLayout(self.timeline_box)
        timeline_layout.setContentsMargins(4, 4, 4, 4)
        timeline_layout.addWidget(self.timeline)

        faces_box = QGroupBox("All faces (%)")
        faces_layout = QVBoxLayout(faces_box)
        faces_layout.addWidget(self.table)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(selected_box)
        layout.addWidget(self.timeline_box, 1)
        layout.addWidget(faces_box, 1)
        self.setMinimumWidth(330)

    def show_mode(self, mode: str) -> None:
        """Live video or an opened photo (``mode`` "live" or "image"): a photo has no history,
        so the timeline is emptied and hidden."""
        self.hint_label.setText(HINTS[mode])
        if mode == "image":
            self.timeline.clear()
            self.timeline_box.hide()
        else:
            self.timeline_box.show()

    def show_selected(self, faces, index: int | None, seen: bool) -> None:
        """The bars and title of ``faces[index]``; with None, ``seen`` says whether a picture was labelled."""
        if index is None:
            self.bars.set_probs(None)
            self.face_title.setText("No face found" if seen else "No face yet")
            return
        face = faces[index]
        self.bars.set_probs(face.probs)
        number = f"Face #{index + 1} of {len(faces)}: " if len(faces) > 1 else ""
        self.face_title.setText(f"{number}{face.label} ({100 * face.confidence:.0f}%)")

    def fill_table(self, faces, selected_row: int | None) -> None:
        """One row per face in percent, its top emotion bold and its number in the emotion's colour."""
        table = self.table
        table.setRowCount(len(faces))
        for row, face in enumerate(faces):
            top = int(face.probs.argmax())
            cells = [f"{row + 1}"] + [f"{100 * float(p):.0f}" for p in face.probs]
            for col, text in enumerate(cells):
                item = table.item(row, col)
                if item is None:
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    table.setItem(row, col, item)
                item.setText(text)
                font = item.font()
                font.setBold(col == top + 1)
                item.setFont(font)
                if col == 0:
                    item.setToolTip(face.label)
                    item.setBackground(EMOTION_COLORS[face.label])
                    item.setForeground(text_color_on(EMOTION_COLORS[face.label]))
        if selected_row is not None:
            table.selectRow(selected_row)
        else:
            table.clearSelection()


def _faces_table() -> QTableWidget:
    table = QTableWidget(0, 1 + len(EMOTIONS))
    table.setHorizontalHeaderLabels(["#"] + [e[:3] for e in EMOTIONS])
    for i, name in enumerate(EMOTIONS):
        table.horizontalHeaderItem(1 + i).setToolTip(name)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    header.setMinimumSectionSize(24)
    table.verticalHeader().setDefaultSectionSize(22)
    return table
