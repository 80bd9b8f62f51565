"""The PySide6 desktop app. Only this package imports Qt.

The threads live in Qt-free core modules (``capture``, ``inference``); this
package bridges their callbacks to queued signals and draws.
"""
