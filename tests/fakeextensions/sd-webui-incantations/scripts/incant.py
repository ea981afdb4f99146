"""Fake of v0xie/sd-webui-incantations (980d638), scripts/incant.py: only its place in the argument list
(`IncantExtensionScript.setup_ui` gives 7 values)."""

from scripts.ui_wrapper import UIWrapper


class IncantExtensionScript(UIWrapper):
    def title(self):
        return "Seek Incantations"

    def setup_ui(self, is_img2img):
        return [False, False, False, ",", "", 1.0, 10]
