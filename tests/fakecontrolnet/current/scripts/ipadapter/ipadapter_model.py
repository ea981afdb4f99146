"""Fake of scripts/ipadapter/ipadapter_model.py: the key/value projections, named as the real `To_KV` names them."""

from torch import nn


class To_KV(nn.Module):
    def __init__(self, state_dict):
        super().__init__()
        self.to_kvs = nn.ModuleDict()
        for key, value in state_dict.items():
            name = key.replace(".weight", "").replace(".", "_")  # "1.to_k_ip.weight" -> "1_to_k_ip"
            self.to_kvs[name] = nn.Linear(value.shape[1], value.shape[0], bias=False, device="meta")


class IPAdapterModel(nn.Module):
    def __init__(self, state_dict, is_sdxl: bool):
        super().__init__()
        self.is_sdxl = is_sdxl
        self.ip_layers = To_KV(state_dict["ip_adapter"])

    def get_image_emb(self, preprocessor_output):
        return preprocessor_output
