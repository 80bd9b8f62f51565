"""``python -m fer_desktop``: the desktop app, like ``fer-desktop``."""

import sys

from fer_desktop.app.main import main

if __name__ == "__main__":
    sys.exit(main())
