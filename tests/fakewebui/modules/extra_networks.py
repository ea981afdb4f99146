"""Fake of modules/extra_networks.py (v1.6.0 … v1.10.1): parsing `<name:arg1:arg2>` out of prompts, and `activate`,
which ends by running the scripts' `after_extra_networks_activate` hook. No extra network is registered in the fake
(tests put what the Lora built-in would have loaded into `networks.loaded_networks` themselves)."""

import re
from collections import defaultdict

re_extra_net = re.compile(r"<(\w+):([^>]+)>")

extra_network_registry = {}


class ExtraNetworkParams:
    def __init__(self, items=None):
        self.items = items or []
        self.positional = []
        self.named = {}
        for item in self.items:
            parts = item.split("=", 2) if isinstance(item, str) else [item]
            if len(parts) == 2:
                self.named[parts[0]] = parts[1]
            else:
                self.positional.append(item)


def parse_prompt(prompt):
    res = defaultdict(list)

    def found(m):
        res[m.group(1)].append(ExtraNetworkParams(items=m.group(2).split(":")))
        return ""

    return re.sub(re_extra_net, found, prompt), res


def parse_prompts(prompts):
    res = []
    extra_data = None
    for prompt in prompts:
        updated_prompt, parsed_extra_data = parse_prompt(prompt)
        if extra_data is None:
            extra_data = parsed_extra_data
        res.append(updated_prompt)
    return res, extra_data


def activate(p, extra_network_data):
    if p.scripts is not None:
        p.scripts.after_extra_networks_activate(
            p,
            batch_number=p.iteration,
            prompts=p.prompts,
            seeds=p.seeds,
            subseeds=p.subseeds,
            extra_network_data=extra_network_data,
        )
