"""Fake of onediff_sd_webui_extensions/compile (onediff 98898c49): `OneDiffCompiledGraph(sd_model=None,
unet_model=None, graph_module=None, quantized=False)` with `name`, `filename`, `sha`, `eager_module`,
`graph_module`, `quantized` (`compile/utils.py:57-79`), and `get_compiled_graph(sd_model, quantization, backend)`.

The fake's graph module is a `CompiledUNet` holding the eager UNet it was compiled from (the real `DeployableModule`
keeps it too, and is a `torch.nn.Module`, so it can stand as `sd_model.model.diffusion_model`); `compiled` lists every
graph made.
"""

import torch

compiled = []


class CompiledUNet(torch.nn.Module):
    def __init__(self, eager_module):
        super().__init__()
        object.__setattr__(
            self, "eager_module", eager_module
        )  # held, not a submodule (as DeployableModule's _torch_module)


class OneDiffCompiledGraph:
    name = None
    filename = None
    sha = None
    eager_module = None
    graph_module = None
    quantized = False

    def __init__(self, sd_model=None, unet_model=None, graph_module=None, quantized=False):
        if sd_model is None:
            return
        self.name = sd_model.sd_checkpoint_info.name
        self.filename = sd_model.sd_checkpoint_info.filename
        self.sha = getattr(sd_model, "sd_model_hash", None)
        self.eager_module = unet_model or sd_model.model.diffusion_model
        self.graph_module = graph_module
        self.quantized = quantized


def get_compiled_graph(sd_model, quantization=False, backend=None):
    unet = sd_model.model.diffusion_model
    graph = OneDiffCompiledGraph(sd_model, unet, CompiledUNet(unet), quantization)
    compiled.append(graph)
    return graph
