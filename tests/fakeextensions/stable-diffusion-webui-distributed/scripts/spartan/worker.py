"""Fake of papuSpartan/stable-diffusion-webui-distributed (read at 8fd65eb), scripts/spartan/worker.py.

Mirrors: `InvalidWorkerResponse`, `State`; `Worker(address, port, label, master=False, …)` with `label`, `master`,
`address`, `port`, `tls`, `state`, `supported_scripts` ({"txt2img": [...], "img2img": [...]}: the always-on script
names of `GET /sdapi/v1/script-info`, lowercased titles), `session` (a requests Session; the tests give a fake),
`loaded_model`, `loaded_vae`, `response`, `model_override`; `__eq__` by label (which leaves workers unhashable, as
there); `full_url(route)` → `{http|https}://{address}:{port}/sdapi/v1/{route}`.
`request(payload, option_payload, sync_options)` (`:288-504`): `load_options` first when syncing; the caches that
do not serialise dropped; `alwayson_scripts` filtered to the titles in `supported_scripts[mode]`; `json.dumps(payload)`
(a failure: "Failed to serialize payload" and the job is lost); `POST txt2img|img2img` with `json=payload`; a non-200
answer logs its code and body, leaves `response` None and raises `InvalidWorkerResponse` (the worker's images are
lost). `load_options(model, vae=None)` (`:646-688`): not for the master; `POST /sdapi/v1/options`
{sd_model_checkpoint (without " [hash]"), sd_vae}, which the worker saves.
Left out: ETA bookkeeping, interruption, the memory query, init images and masks.
"""

import json
import re
from enum import Enum

from .shared import logger


class InvalidWorkerResponse(Exception):  # noqa: N818 - their name
    pass


class State(Enum):
    IDLE = 1
    WORKING = 2
    INTERRUPTED = 3
    UNAVAILABLE = 4
    DISABLED = 5


class Worker:  # noqa: PLW1641 - __eq__ without __hash__, as theirs: workers are unhashable
    def __init__(self, address=None, port=7860, label=None, master=False, tls=False, state=State.IDLE, session=None):
        self.address = address
        self.port = port
        self.label = "master" if master else label
        self.master = master
        self.tls = tls
        self.state = state
        self.loaded_model = ""
        self.loaded_vae = ""
        self.supported_scripts = {}
        self.model_override = None
        self.response = None
        self.jobs_requested = 0
        self.session = session

    def __str__(self):
        return f"{self.address}:{self.port}"

    def __eq__(self, other):
        return isinstance(other, Worker) and other.label == self.label

    def full_url(self, route):
        protocol = "http" if not self.tls else "https"
        return f"{protocol}://{self.__str__()}/sdapi/v1/{route}"

    def request(self, payload, option_payload, sync_options):
        try:
            self.state = State.WORKING
            if sync_options is True:
                self.load_options(model=option_payload["sd_model_checkpoint"], vae=option_payload["sd_vae"])
            for cache in ("cached_uc", "cached_c", "uc", "c", "cached_hr_c", "cached_hr_uc"):
                payload.pop(cache, None)
            mode = "img2img" if payload.get("init_images") is not None else "txt2img"
            alwayson_scripts = payload.get("alwayson_scripts", None)
            if alwayson_scripts is not None:
                if len(self.supported_scripts) <= 0:
                    payload["alwayson_scripts"] = {}
                else:
                    remote = [name.lower() for name in self.supported_scripts[mode]]
                    payload["alwayson_scripts"] = {k: v for k, v in alwayson_scripts.items() if k.lower() in remote}
            try:
                json.dumps(payload)
            except Exception as e:
                logger.error(f"Failed to serialize payload: \n{payload}")
                raise e
            response = self.session.post(self.full_url(mode), json=payload)
            self.response = response.json()
            if response.status_code != 200:
                logger.error(f"'{self.label}' response: Code <{response.status_code}> {str(response.content, 'utf-8')}")
                self.response = None
                raise InvalidWorkerResponse()
        except Exception as e:
            self.state = State.IDLE
            raise InvalidWorkerResponse(e) from e
        self.state = State.IDLE
        self.jobs_requested += 1

    def load_options(self, model, vae=None):
        if self.master:
            return None
        if self.model_override is not None:
            model = self.model_override
        model_name = re.sub(r"\s?\[[^]]*]$", "", model)
        payload = {"sd_model_checkpoint": model_name}
        if vae is not None:
            payload["sd_vae"] = vae
        response = self.session.post(self.full_url("options"), json=payload)
        if response.status_code == 200:
            self.loaded_model = model_name
            if vae is not None:
                self.loaded_vae = vae
        self.response = response
        return self
