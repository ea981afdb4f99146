"""Fake of papuSpartan/stable-diffusion-webui-distributed (read at 8fd65eb), scripts/distributed.py.

Mirrors `DistributedScript` (title "Distribute", always visible; the class attribute `world`, built at import; on
and off by `world.enabled`, not by its arguments):
- `before_process(p, *args)` (`:185-327`): every always-on script's arguments packed by title; `payload =
  copy.copy(p.__dict__)`, every attribute of `p` (so `override_settings` too), with `batch_size`, `scripts=None`,
  `script_args` removed, `alwayson_scripts`, `seed`/`subseed`; `option_payload` = the master's checkpoint name
  (without " [hash]") and `sd_vae`; per remote job a deep copy, `sync` once a worker's loaded model or VAE differs,
  and a thread running `worker.request(payload_temp, option_payload, sync)`;
- `postprocess_batch_list(p, pp, *args, **kwargs)`: waits for the threads and appends each worker's images to the
  gallery, recording their indices in `job.gallery_map`;
- `postprocess(p, processed, *args)` (`:343-360`): each worker image's infotext becomes the worker's own
  (`json.loads(response['info'])['infotexts'][i]`) plus ", Worker Label: <label>"; every `worker.response` is
  cleared.
The fake's `p` keeps `sd_model` among its attributes (the host's is a property): it is left out of the payload.
"""

import copy
import json
import re
from threading import Thread

from modules import scripts
from modules.shared import opts
from scripts.spartan.worker import State
from scripts.spartan.world import World


class DistributedScript(scripts.Script):
    world = World(verify_remotes=True)
    master_start = None

    def title(self):
        return "Distribute"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return []

    def before_process(self, p, *args):
        if not self.world.enabled:
            return
        self.world.update(p)
        packed_script_args = []
        for script in p.scripts.scripts:
            if script.alwayson is not True:
                continue
            packed_script_args.append(
                {script.title(): {"args": list(p.script_args[script.args_from : script.args_to])}}
            )
        payload = copy.copy(p.__dict__)
        payload.pop("sd_model", None)
        payload["batch_size"] = self.world.default_batch_size()
        payload["scripts"] = None
        del payload["script_args"]
        payload["alwayson_scripts"] = {}
        for packed in packed_script_args:
            payload["alwayson_scripts"].update(packed)
        payload["subseed"] = -1
        name = re.sub(r"\s?\[[^]]*]$", "", opts.data["sd_model_checkpoint"] or "")
        vae = opts.data.get("sd_vae")
        option_payload = {"sd_model_checkpoint": name, "sd_vae": vae}
        self.world.optimize_jobs(payload)
        for job in self.world.jobs:
            if job.worker.state in (State.UNAVAILABLE, State.DISABLED) or job.worker.master:
                continue
            payload_temp = copy.deepcopy(copy.copy(payload))
            payload_temp["batch_size"] = job.batch_size
            sync = False
            if job.worker.loaded_model != name or job.worker.loaded_vae != vae:
                sync = True
                job.worker.loaded_model = name
                job.worker.loaded_vae = vae
            job.thread = Thread(target=job.worker.request, args=(payload_temp, option_payload, sync))
            job.thread.start()
        self.master_start = 0

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        for job in self.world.jobs:
            if job.thread is not None:
                job.thread.join()
        for job in self.world.jobs:
            if job.worker.response is None or job.worker.master:
                continue
            for image in job.worker.response["images"]:
                job.gallery_map.append(len(pp.images))
                pp.images.append(image)

    def postprocess(self, p, processed, *args):
        for job in self.world.jobs:
            if job.worker.response is not None:
                for i, v in enumerate(job.gallery_map):
                    infotext = json.loads(job.worker.response["info"])["infotexts"][i]
                    infotext += f", Worker Label: {job.worker.label}"
                    processed.infotexts[v] = infotext
        for worker in self.world.get_workers():
            worker.response = None
        self.world.save_config()
