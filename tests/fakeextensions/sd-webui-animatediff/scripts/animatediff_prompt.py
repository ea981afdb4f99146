"""Fake of continue-revolution/sd-webui-animatediff (a88e889), scripts/animatediff_prompt.py:
`AnimateDiffPromptSchedule(p, params)`, which `postprocess` asks to write the prompt schedule into the infotext."""


class AnimateDiffPromptSchedule:
    def __init__(self, p, params):
        self.prompt_map = None

    def save_infotext_txt(self, res):
        pass
