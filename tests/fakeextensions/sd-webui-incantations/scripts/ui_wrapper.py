"""Fake of v0xie/sd-webui-incantations (read at 980d638), scripts/ui_wrapper.py: `UIWrapper`, the base of every
submodule (`setup_ui`, the hooks the base script forwards, `get_infotext_fields`)."""


class UIWrapper:
    def __init__(self):
        self.infotext_fields = []
        self.paste_field_names = []

    def title(self):
        raise NotImplementedError

    def setup_ui(self, is_img2img):
        raise NotImplementedError

    def get_infotext_fields(self):
        return self.infotext_fields

    def get_paste_field_names(self):
        return self.paste_field_names

    def before_process(self, p, *args, **kwargs):
        pass

    def process(self, p, *args, **kwargs):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def unhook_callbacks(self):
        pass
