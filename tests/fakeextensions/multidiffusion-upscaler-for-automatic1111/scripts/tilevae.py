"""Fake of pkuliyi2015/multidiffusion-upscaler-for-automatic1111 (read at 22798f6), scripts/tilevae.py.

Mirrors: `VAEHook(net, tile_size, is_decoder, fast_decoder, fast_encoder, color_fix, to_gpu=False)` with the
attributes `net`, `tile_size`, `is_decoder`, `fast_mode`, `color_fix`, `to_gpu`, `pad` (11 decoding, 32 encoding);
`__call__(x)` runs `net.original_forward(x)` when `max(H, W) <= pad * 2 + tile_size`, else its own tiled forward.
`Script` titled "Tiled VAE", always visible, `ui()` → [enabled, encoder_tile_size, decoder_tile_size, vae_to_gpu,
fast_decoder, fast_encoder, color_fix]; `process` saves `encoder.forward` / `decoder.forward` as
`original_forward` once per module and sets a `VAEHook` as the instance attribute `forward` of each; `postprocess`
puts `original_forward` back (the instance attribute stays). No infotext.

The fake's `vae_tile_forward` records the call in `tiled_calls` as (is_decoder, input shape) and runs the input
through `net.original_forward` in one piece: how Tiled VAE tiles is not what the adapter touches, only that it
tiles inside the VAE's own call (and that an error there, out of memory included, comes from inside that call).
"""

from modules import devices, scripts

tiled_calls = []


class VAEHook:
    def __init__(self, net, tile_size, is_decoder, fast_decoder, fast_encoder, color_fix, to_gpu=False):
        self.net = net
        self.tile_size = tile_size
        self.is_decoder = is_decoder
        self.fast_mode = (fast_encoder and not is_decoder) or (fast_decoder and is_decoder)
        self.color_fix = color_fix and not is_decoder
        self.to_gpu = to_gpu
        self.pad = 11 if is_decoder else 32

    def __call__(self, x):
        original_device = next(self.net.parameters()).device
        try:
            if self.to_gpu:
                self.net = self.net.to(devices.get_optimal_device())
            _, _, height, width = x.shape
            if max(height, width) <= self.pad * 2 + self.tile_size:
                print("[Tiled VAE]: the input size is tiny and unnecessary to tile.")
                return self.net.original_forward(x)
            return self.vae_tile_forward(x)
        finally:
            self.net = self.net.to(original_device)

    def vae_tile_forward(self, x):
        tiled_calls.append((self.is_decoder, tuple(x.shape)))
        return self.net.original_forward(x)


class Script(scripts.Script):
    def __init__(self):
        self.hooked = False

    def title(self):
        return "Tiled VAE"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [False, 1024, 96, True, True, True, False]

    def process(
        self, p, enabled, encoder_tile_size, decoder_tile_size, vae_to_gpu, fast_decoder, fast_encoder, color_fix
    ):
        vae = p.sd_model.first_stage_model
        encoder = vae.encoder
        decoder = vae.decoder
        if not enabled:
            if self.hooked:
                if isinstance(encoder.forward, VAEHook):
                    encoder.forward.net = None
                    encoder.forward = encoder.original_forward
                if isinstance(decoder.forward, VAEHook):
                    decoder.forward.net = None
                    decoder.forward = decoder.original_forward
                self.hooked = False
            return
        kwargs = {
            "fast_decoder": fast_decoder,
            "fast_encoder": fast_encoder,
            "color_fix": color_fix,
            "to_gpu": vae_to_gpu,
        }
        if not hasattr(encoder, "original_forward"):
            encoder.original_forward = encoder.forward
        if not hasattr(decoder, "original_forward"):
            decoder.original_forward = decoder.forward
        self.hooked = True
        encoder.forward = VAEHook(encoder, encoder_tile_size, is_decoder=False, **kwargs)
        decoder.forward = VAEHook(decoder, decoder_tile_size, is_decoder=True, **kwargs)

    def postprocess(self, p, processed, enabled, *args):
        if not enabled:
            return
        vae = p.sd_model.first_stage_model
        encoder = vae.encoder
        decoder = vae.decoder
        if isinstance(encoder.forward, VAEHook):
            encoder.forward.net = None
            encoder.forward = encoder.original_forward
        if isinstance(decoder.forward, VAEHook):
            decoder.forward.net = None
            decoder.forward = decoder.original_forward
