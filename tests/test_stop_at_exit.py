"""What a program forgot to stop is stopped at interpreter exit, the last registered first."""

import subprocess
import sys


def test_threads_left_running_are_stopped_at_exit():
    code = ("from fer_desktop.stop_at_exit import stop_at_exit\n"
            "class Running:\n"
            "    def __init__(self, name):\n"
            "        self.name = name\n"
            "    def stop(self, timeout):\n"
            "        print('stopped', self.name, timeout)\n"
            "first, second, gone = Running('first'), Running('second'), Running('gone')\n"
            "for thing in (first, second, gone):\n"
            "    stop_at_exit(thing)\n"
            "del gone, thing  # nothing holds it any more\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["stopped second 2.0", "stopped first 2.0"]
