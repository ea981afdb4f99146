"""Fake of modules/sd_hijack.py: the model hijack singleton, with v1.7+'s fixed SSD-1B conversion.

`convert_sdxl_to_ssd` deletes the same blocks as the real one, by attribute name, so it fails the same way on a
model that has them no longer ("... object has no attribute '1'").
"""

import fake_host

from modules import devices

# v1.7+ fixed SSD-1B pruning: (block list, index) -> transformer block names deleted, highest first.
SSD_1B_DELETED_TRANSFORMER_BLOCKS = {
    ("input_blocks", 7): ("9", "8", "7", "6", "5", "4"),
    ("input_blocks", 8): ("9", "8", "7", "6", "5", "4"),
    ("output_blocks", 0): ("9", "8", "7", "6", "5", "4"),
    ("output_blocks", 1): ("9", "8", "7", "6", "5", "4"),
    ("output_blocks", 4): ("1",),
    ("output_blocks", 5): ("1",),
}
SSD_1B_DELETED_MIDDLE = ("1", "2")


class EmbeddingDatabase:
    def load_textual_inversion_embeddings(self, force_reload=False):
        pass


class StableDiffusionModelHijack:
    fixes = None
    layers = None
    circular_enabled = False
    clip = None
    optimization_method = None

    def __init__(self):
        self.extra_generation_params = {}
        self.comments = []
        self.embedding_db = EmbeddingDatabase()

    def apply_optimizations(self, option=None):
        pass

    if fake_host.at_least("1.7.0"):

        def convert_sdxl_to_ssd(self, m):
            """Converts an SDXL model to a Segmind Stable Diffusion model (see https://huggingface.co/segmind/SSD-1B)"""
            unet = m.model.diffusion_model
            for name in SSD_1B_DELETED_MIDDLE:
                delattr(unet.middle_block, name)
            for (blocks, index), names in SSD_1B_DELETED_TRANSFORMER_BLOCKS.items():
                for name in names:
                    delattr(getattr(unet, blocks)[index][1].transformer_blocks, name)
            devices.torch_gc()

    def hijack(self, m):
        conditioner = getattr(m, "conditioner", None)
        if conditioner is not None:
            m.cond_stage_model = conditioner
        self.clip = getattr(m, "cond_stage_model", None)
        m.webui_hijacked = True

    def undo_hijack(self, m):
        if getattr(m, "conditioner", None) is not None and hasattr(m, "cond_stage_model"):
            delattr(m, "cond_stage_model")
        m.webui_hijacked = False
        self.clip = None

    def clear_comments(self):
        self.comments = []
        self.extra_generation_params = {}


model_hijack = StableDiffusionModelHijack()
