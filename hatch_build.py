"""Wheels carry the trained weights inside the package (``fer_desktop/_weights``).

Only wheels: an editable install reads ``weights/`` of the checkout
(``fer_desktop.weights.weights_dirs``), and hatchling's ``force-include`` option
would also copy the folder into every editable install.
"""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class WeightsInWheels(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version == "standard":  # not "editable"
            build_data["force_include"]["weights"] = "fer_desktop/_weights"
