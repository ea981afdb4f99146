"""Streaming conversion into A1111's single-file layout: holes in the block numbering closed, diffusers UNets renamed.

Host-free. diffusers' SDXL → single-file script assumes two ResBlocks per level (`input_blocks.{3*i+j+1}`,
`output_blocks.{3*i+j}`), so a KOALA it converts has holes in its numbering (input_blocks 0, 1, 3, 4, 6, 7) that no
single-file UNet builder can build. `convert_file` renumbers such a file into the numbering sgm's UNetModel uses
(contiguous, in the same order) and can change its float dtype on the way.

How it runs: the output header is computed from the input header first (names, dtypes, shapes, offsets), then the
tensors are copied one at a time (converted when the dtype changes), so the memory needed is bounded by the largest
tensor, not by the model. The output is written to a temporary file next to the target and renamed into place
only when complete; an existing file is never overwritten unless asked; any failure removes the temporary file.
The result is read back and must describe a UNet `ssd1b.unet_config` can build.

diffusers pipelines (a folder with `model_index.json`, `unet/`, `vae/`, `text_encoder/`, `text_encoder_2/`, each
one safetensors file, its fp16 variant or shards) are converted whole: the UNet for any number of ResBlocks per
level (`ssd1b.diffusers_names`), the VAE and both text encoders by `ssd1b.convert.parts` (OpenCLIP's q/k/v
concatenated into `in_proj_*` and its projection transposed on the way, the VAE attention's Linear weights written
as 1×1 convolutions). A diffusers UNet alone (its file, or a pipeline with `borrow`) takes the text encoders and
VAE of an A1111 single file. Before anything is written the parts must fit each other (text-encoder widths against
the UNet's cross-attention, VAE latent channels against the UNet's input).

Modules: `plan` (what is read and written, and the checks that the result is buildable), `preflight` (OUT, the
libraries needed, whether there is anything to convert: all before a byte is written), `writer` (streaming,
atomic), `partials` (the temporary file, and those a killed run left), `pipeline` (diffusers pipeline folders),
`parts` (VAE and text-encoder names); the UNet's diffusers names are `ssd1b.diffusers_names`, shared with the LoRA
code.
"""

from ssd1b.convert.pipeline import PipelineError, is_pipeline_folder, pipeline_of_part, unet_ldm_shapes
from ssd1b.convert.plan import DTYPES, ConvertError, renumbering
from ssd1b.convert.preflight import MissingLibraryError, NothingToConvertError, OutputNameError
from ssd1b.convert.writer import Progress, Result, convert_file, per_percent

__all__ = [
    "DTYPES",
    "ConvertError",
    "MissingLibraryError",
    "NothingToConvertError",
    "OutputNameError",
    "PipelineError",
    "Progress",
    "Result",
    "convert_file",
    "is_pipeline_folder",
    "per_percent",
    "pipeline_of_part",
    "renumbering",
    "unet_ldm_shapes",
]
