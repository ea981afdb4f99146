"""Fake of modules/processing.py: the processing object's fields a script touches, and the hook order.

`process_images` runs what the host runs around a generation, minus the model: `scripts.before_process(p)`, then
`override_settings` applied through `opts.set` (an unknown key raises KeyError, as in the host), `setup_prompts()`
(which fixes `all_prompts` / `all_negative_prompts`, and here the seeds), then `scripts.process(p)` and
`sd_unet.apply_unet()`; when scripts run, then per batch (v1.10.1 `process_images_inner`): `before_process_batch`,
the extra networks parsed out of the prompts and `extra_networks.activate` (which ends with
`after_extra_networks_activate`), `process_batch`, the sampling (`process_before_every_sampling` from v1.10, then
`p.steps` calls of a `CFGDenoiser` on a stand-in UNet, see modules/sd_samplers_cfg_denoiser.py; an exception there
aborts the generation, as in the host), `postprocess_batch`, `postprocess_batch_list` (one placeholder image per
batch entry; scripts may add to them); and last `postprocess` with the gallery (kept, fake only, as
`p.fake_processed`). The returned infotext is built from the final fields and `extra_generation_params` in the
host's format (`key: quote(value)` pairs after the prompt lines). `scheduler` exists from v1.9.
"""

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import fake_host

from modules.generation_parameters_copypaste import quote


@dataclass(repr=False)
class StableDiffusionProcessing:
    prompt: str = ""
    negative_prompt: str = ""
    styles: list = None
    seed: int = -1
    sampler_name: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    override_settings: dict = None
    override_settings_restore_afterwards: bool = True
    extra_generation_params: dict = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False

    scripts: Any = field(default=None, init=False)
    script_args: tuple = field(default=(), init=False)
    is_api: bool = field(default=False, init=False)
    all_prompts: list = field(default=None, init=False)
    all_negative_prompts: list = field(default=None, init=False)
    comments: dict = field(default=None, init=False)
    all_seeds: list = field(default=None, init=False)
    all_subseeds: list = field(default=None, init=False)
    iteration: int = field(default=0, init=False)
    is_hr_pass: bool = field(default=False, init=False)
    disable_extra_networks: bool = field(default=False, init=False)
    sampler: Any = field(default=None, init=False)

    def __post_init__(self):
        self.comments = {}
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        if fake_host.at_least("1.9.0") and not hasattr(self, "scheduler"):
            self.scheduler = None

    def comment(self, text):
        """Real (v1.6+): the comments shown under the image, each once."""
        self.comments[text] = 1

    def setup_prompts(self):
        count = self.batch_size * self.n_iter
        self.all_prompts = [self.prompt] * count
        self.all_negative_prompts = [self.negative_prompt] * count
        first_seed = max(int(self.seed), 0)
        self.all_seeds = [first_seed + i for i in range(count)]
        self.all_subseeds = list(self.all_seeds)

    def parse_extra_network_prompts(self):
        from modules import extra_networks

        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def sample(self):
        """Stand-in for the sampler: `process_before_every_sampling` (v1.10+), then one `CFGDenoiser` call per step
        on a latent of zeros, the prompt as cond 1 and the negative prompt as cond 0."""
        import torch

        from modules.sd_samplers_cfg_denoiser import CFGDenoiser

        x = torch.zeros((len(self.prompts), 4, 8, 8))
        if fake_host.at_least("1.10.0"):
            self.scripts.process_before_every_sampling(self, x=x, noise=x, c=None, uc=None)
        self.sampler = SimpleNamespace(model_wrap_cfg=CFGDenoiser(self, total_steps=self.steps))
        sigma = torch.ones(x.shape[0])
        cond, uncond = torch.ones(x.shape[0]), torch.zeros(x.shape[0])
        for _ in range(self.steps):
            x = self.sampler.model_wrap_cfg(x, sigma, uncond, cond, self.cfg_scale)
        return x


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    hr_prompt: str = ""

    def setup_prompts(self):
        """Real: the hires-fix prompts default to the first pass's (`all_hr_prompts`, set for every txt2img)."""
        super().setup_prompts()
        count = self.batch_size * self.n_iter
        self.all_hr_prompts = [self.hr_prompt or self.prompt] * count


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    init_images: list = None
    denoising_strength: float = 0.75


def create_infotext(p, index=0):
    params = {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "Schedule type": getattr(p, "scheduler", None),
        "CFG scale": p.cfg_scale,
        "Size": f"{p.width}x{p.height}",
        **p.extra_generation_params,
    }
    line = ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None)
    negative = p.all_negative_prompts[index]
    negative_text = f"\nNegative prompt: {negative}" if negative else ""
    return f"{p.all_prompts[index]}{negative_text}\n{line}".strip()


if fake_host.is_forge():
    from modules.sd_models import forge_model_reload  # by name, as Forge's processing.py imports it


def process_images(p):
    """Returns the infotext of the first image (the fake generates nothing). As the host: `before_process`, then
    `override_settings` applied (restored at the end with `override_settings_restore_afterwards`), `process`, then
    `sd_unet.apply_unet()`. On Forge the model is (re)loaded after `before_process`, as Forge's
    `manage_model_and_prompt_cache` does."""
    from modules import sd_unet, shared

    if p.scripts is not None:
        p.scripts.before_process(p)
    if fake_host.at_least("1.10.0"):
        stored_opts = {k: shared.opts.data[k] for k in p.override_settings if k in shared.opts.data}
    else:  # before v1.10.0 every key is read (KeyError for an option never saved)
        stored_opts = {k: shared.opts.data[k] for k in p.override_settings}
    try:
        for key, value in p.override_settings.items():
            shared.opts.set(key, value, is_api=True, run_callbacks=False)
        if fake_host.is_forge():
            p.sd_model, _ = forge_model_reload()
        p.setup_prompts()
        if p.scripts is not None:
            p.scripts.process(p)
        sd_unet.apply_unet()
        if p.scripts is None:
            return create_infotext(p)
        images = [image for n in range(p.n_iter) for image in _process_batch(p, n)]
        infotext = create_infotext(p)
        p.fake_processed = SimpleNamespace(images=images, infotexts=[infotext] * len(images))
        p.scripts.postprocess(p, p.fake_processed)
        return infotext
    finally:
        if p.override_settings_restore_afterwards:
            for key, value in stored_opts.items():
                setattr(shared.opts, key, value)


def _process_batch(p, n):
    from modules import extra_networks, scripts

    p.iteration = n
    batch = slice(n * p.batch_size, (n + 1) * p.batch_size)
    p.prompts, p.negative_prompts = p.all_prompts[batch], p.all_negative_prompts[batch]
    p.seeds, p.subseeds = p.all_seeds[batch], p.all_subseeds[batch]
    p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
    p.parse_extra_network_prompts()
    if not p.disable_extra_networks:
        extra_networks.activate(p, p.extra_network_data)
    p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
    samples = p.sample()
    p.scripts.postprocess_batch(p, samples, batch_number=n)
    batch_params = scripts.PostprocessBatchListArgs([f"image {n}.{i}" for i in range(p.batch_size)])
    p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
    return batch_params.images


# --- decoding a batch after sampling (txt2img, img2img, the first pass of hires fix) -----------------------------


class DecodedSamples(list):
    already_decoded = True


def decode_latent_batch(model, batch, target_device=None, check_for_nans=False):
    """One `decode_first_stage` per image; the host's NaN check looks at each image's first element only and, when
    it trips, converts the VAE (bfloat16 from v1.8 if chosen, else 32-bit float) and decodes that image again."""
    import torch

    from modules import devices, errors, shared
    from modules.sd_samplers_common import decode_first_stage

    samples = DecodedSamples()
    if check_for_nans and fake_host.at_least("1.8.0"):
        devices.test_for_nans(batch, "unet")
    for i in range(batch.shape[0]):
        sample = decode_first_stage(model, batch[i : i + 1])[0]
        if check_for_nans:
            try:
                devices.test_for_nans(sample, "vae")
            except devices.NansException as e:
                if fake_host.at_least("1.8.0") and shared.opts.auto_vae_precision_bfloat16:
                    autofix_dtype, text = torch.bfloat16, "bfloat16"
                elif shared.opts.auto_vae_precision:
                    autofix_dtype, text = torch.float32, "32-bit float"
                else:
                    raise e
                if devices.dtype_vae == autofix_dtype:
                    raise e
                errors.print_error_explanation(
                    f"A tensor with all NaNs was produced in VAE.\nWeb UI will now convert VAE into {text} and retry."
                )
                devices.dtype_vae = autofix_dtype
                model.first_stage_model.to(devices.dtype_vae)
                batch = batch.to(devices.dtype_vae)
                sample = decode_first_stage(model, batch[i : i + 1])[0]
        if target_device is not None:
            sample = sample.to(target_device)
        samples.append(sample)
    return samples
