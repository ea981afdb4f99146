"""Fake of continue-revolution/sd-webui-animatediff (read at a88e889), scripts/animatediff_ui.py: `AnimateDiffProcess`,
the parameters one `gr.State` holds (`model`, `enable`, `video_length`, `batch_size`, … as keyword arguments with the
real defaults), `apply_xyz()`, `set_p(p)` (the batch becomes the frame count), `get_dict(is_img2img)` (the infotext
value). Left out: the UI group, ControlNet units, video sources."""

from scripts.animatediff_mm import mm_animatediff as motion_module
from scripts.animatediff_xyz import xyz_attrs


class AnimateDiffProcess:
    def __init__(
        self,
        model="mm_sd15_v3.safetensors",
        enable=False,
        video_length=0,
        fps=8,
        loop_number=0,
        closed_loop="R-P",
        batch_size=16,
        stride=1,
        overlap=-1,
        format=("GIF", "PNG"),
        interp="Off",
        interp_x=10,
        freeinit_enable=False,
        request_id="",
        is_i2i_batch=False,
        video_default=False,
        prompt_scheduler=None,
    ):
        self.model = model
        self.enable = enable
        self.video_length = video_length
        self.fps = fps
        self.loop_number = loop_number
        self.closed_loop = closed_loop
        self.batch_size = batch_size
        self.stride = stride
        self.overlap = overlap
        self.format = list(format)
        self.interp = interp
        self.interp_x = interp_x
        self.freeinit_enable = freeinit_enable
        self.request_id = request_id
        self.video_default = video_default
        self.is_i2i_batch = is_i2i_batch
        self.prompt_scheduler = prompt_scheduler

    def get_dict(self, is_img2img):
        infotext = {
            "model": self.model,
            "video_length": self.video_length,
            "fps": self.fps,
            "batch_size": self.batch_size,
        }
        if motion_module.mm is not None:
            infotext["mm_hash"] = motion_module.mm.mm_hash[:8]
        return ", ".join(f"{k}: {v}" for k, v in infotext.items())

    def apply_xyz(self):
        for k, v in xyz_attrs.items():
            setattr(self, k, v)

    def set_p(self, p):
        p.batch_size = max(self.video_length, self.batch_size)
        if self.video_length == 0:
            self.video_length = p.batch_size
            self.video_default = True
