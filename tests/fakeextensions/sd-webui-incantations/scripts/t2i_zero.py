"""Fake of v0xie/sd-webui-incantations (980d638), scripts/t2i_zero.py: only its place in the argument list
(`T2I0ExtensionScript.setup_ui` gives 10 values)."""

from scripts.ui_wrapper import UIWrapper


class T2I0ExtensionScript(UIWrapper):
    def title(self):
        return "Multi T2I-Zero"

    def setup_ui(self, is_img2img):
        return [False, False, 10, 0.1, 10.0, 1.0, "", 2.0, 20, 1]
