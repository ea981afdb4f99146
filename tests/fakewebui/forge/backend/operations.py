"""Fake of Forge's backend/operations.py (dfdcbab6): `ForgeOperations.Linear`, the layer Forge builds its UNet's
`nn.Linear`s as (inside `using_forge_operations`).

Kept from the real one (`:126-156`): it starts with `weight = None` and `bias = None` and a `dummy` parameter; its
`_load_from_state_dict` takes `weight` / `bias` from the state dict when there (nothing is reported missing
otherwise) and drops `dummy`; `forward` is `F.linear(x, weight, bias)`, a TypeError while `weight` is None. Forge's
convolutions and norms are built with uninitialised weights, as torch's own on the meta device are here.
"""

import torch


class ForgeOperations:
    class Linear(torch.nn.Module):
        def __init__(self, in_features, out_features, *args, **kwargs):
            super().__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.dummy = torch.nn.Parameter(torch.empty(1, device="meta"))
            self.weight = None
            self.bias = None

        def _load_from_state_dict(
            self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        ):
            if hasattr(self, "dummy"):
                if prefix + "weight" in state_dict:
                    self.weight = torch.nn.Parameter(state_dict[prefix + "weight"], requires_grad=False)
                if prefix + "bias" in state_dict:
                    self.bias = torch.nn.Parameter(state_dict[prefix + "bias"], requires_grad=False)
                del self.dummy
            else:
                super()._load_from_state_dict(
                    state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
                )

        def forward(self, x):
            return torch.nn.functional.linear(x, self.weight, self.bias)
