"""Fake of modules/sd_samplers_common.py: `SamplerData`, and the latent <-> image functions of every VAE call."""

from collections import namedtuple

SamplerDataTuple = namedtuple("SamplerData", ["name", "constructor", "aliases", "options"])


class SamplerData(SamplerDataTuple):
    def total_steps(self, steps):
        return steps * 2 if self.options.get("second_order", False) else steps


# --- latent <-> image: every decode/encode of a generation, hires fix and img2img goes through these -------------

approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


def samples_to_images_tensor(sample, approximation=None, model=None):
    """Latents (UNet space) → images in [-1, 1]; "Full" ends in `model.first_stage_model.decode`."""
    import torch

    from modules import devices, sd_vae_taesd, shared

    if approximation is None or (shared.state.interrupted and shared.opts.live_preview_fast_interrupt):
        approximation = approximation_indexes.get(shared.opts.show_progress_type, 0)
    if approximation in (1, 2):
        raise NotImplementedError("the fake host has no approximate live-preview decoders")
    if approximation == 3:
        x_sample = sd_vae_taesd.decoder_model()(sample.to(devices.device, devices.dtype)).detach()
        return x_sample * 2 - 1
    if model is None:
        model = shared.sd_model
    with torch.no_grad(), devices.without_autocast():
        return model.decode_first_stage(sample.to(model.first_stage_model.dtype))


def decode_first_stage(model, x):
    from modules import devices, shared

    x = x.to(devices.dtype_vae)
    approx_index = approximation_indexes.get(shared.opts.sd_vae_decode_method, 0)
    return samples_to_images_tensor(x, approx_index, model)


def images_tensor_to_samples(image, approximation=None, model=None):
    """image [0, 1] → latent (UNet space); "Full" calls `model.encode_first_stage` one image at a time."""
    import torch

    from modules import devices, sd_vae_taesd, shared

    if approximation is None:
        approximation = approximation_indexes.get(shared.opts.sd_vae_encode_method, 0)
    if approximation == 3:
        image = image.to(devices.device, devices.dtype)
        return sd_vae_taesd.encoder_model()(image)
    if model is None:
        model = shared.sd_model
    model.first_stage_model.to(devices.dtype_vae)
    image = image.to(shared.device, dtype=devices.dtype_vae)
    image = image * 2 - 1
    if len(image) > 1:
        return torch.stack(
            [model.get_first_stage_encoding(model.encode_first_stage(torch.unsqueeze(img, 0)))[0] for img in image]
        )
    return model.get_first_stage_encoding(model.encode_first_stage(image))
