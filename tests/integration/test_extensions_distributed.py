"""Distributed (papuSpartan/stable-diffusion-webui-distributed) with a master and one worker on this machine
(issue 19; ssd1b/webui/extensions/distributed.py).

Two servers of this module's own at a time (conftest runs this module before the session's server starts), both on
Segmind Vega (the smallest model, two servers must fit in memory beside each other): a worker first (Distributed
itself disabled there), then the master with Distributed linked in and a config of ours (`--distributed-config`)
naming the worker with a recorded speed equal to the master's (so nothing is benchmarked and a batch of 2 is split
1 + 1: the master makes seed S, the worker seed S + 1). Every request carries `ssd1b_*` keys in `override_settings`
(test_whole_session.BASE), as a master with this extension may send.

- Worker with this extension: two distributed requests, seeds S and S + 1. The worker's image for S + 1 (first
  request) must equal the master's for S + 1 (second request), and so must their infotexts (the worker's without
  Distributed's `Worker Label`).
- Worker without it (`disabled_extensions` in its settings): a fresh pair. The worker's image still comes back (no
  HTTP 500 for our keys), its infotext ends with `SSD-1B worker: extension missing`, the master's console names the
  worker, and the image for S + 1 is not the master's (A1111 alone does not load Vega right: that is why it is said).

Skipped without SD_WEBUI_EXTENSIONS. The memory check waits (up to MEMORY_WAIT_S) until MemAvailable allows two
servers, else fails with what it saw.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import server as a1111
from tests.integration import third_party
from tests.integration.extension_steps import assert_same, difference, report
from tests.integration.test_extensions import VEGA
from tests.integration.test_whole_session import BASE, pixels

pytestmark = [
    pytest.mark.integration,
    pytest.mark.own_servers,
    pytest.mark.skipif(
        not os.environ.get(third_party.EXTENSIONS_ENV),
        reason=f"set {third_party.EXTENSIONS_ENV} to the folder of the extensions' checkouts to run the extension "
        "tier (tests/integration/README.md)",
    ),
]

SEED = 2024
WORKER = "worker"
SPEED_IPM = 10.0
TWO_SERVERS_GIB = 17.0
"""MemAvailable needed before starting a pair: a server on Segmind Vega in fp32 holds about 8 GiB."""
MEMORY_WAIT_S = 900
WORKER_LABEL = re.compile(r", Worker Label: [^,]*$")


@dataclasses.dataclass
class Pair:
    master: a1111.WebUI
    worker: a1111.WebUI


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def wait_for_memory() -> None:
    deadline = time.monotonic() + MEMORY_WAIT_S
    while available_gib() < TWO_SERVERS_GIB:
        if time.monotonic() > deadline:
            pytest.fail(f"two servers need {TWO_SERVERS_GIB} GiB available; {available_gib():.1f} GiB for 15 min")
        time.sleep(15)


def distributed_config(path: Path, worker_port: int) -> Path:
    config = {
        "workers": [
            {"master": {"avg_ipm": SPEED_IPM, "master": True}},
            {WORKER: {"avg_ipm": SPEED_IPM, "address": "127.0.0.1", "port": worker_port}},
        ],
        "job_timeout": 3,
        "enabled": True,
        "enabled_i2i": False,
        "complement_production": False,
        "step_scaling": False,
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`start(with_extension)`: a worker and a master, the previous pair stopped first; all stopped at the end."""
    assert not a1111.running(), "another server of this session is running: this module needs the machine to itself"
    base = dataclasses.replace(a1111.LaunchSettings.from_environment(), controlnet=None, links=(), startup=VEGA)
    running: list[a1111.WebUI] = []

    def start(worker_has_extension: bool) -> Pair:
        while running:
            a1111.stop(running.pop())
        wait_for_memory()
        work = tmp_path_factory.mktemp("distributed")
        (work / "worker").mkdir()
        (work / "master").mkdir()
        print(f"\nDistributed logs: {work}/{{worker,master}}/server.log", file=sys.stderr)
        disabled = [] if worker_has_extension else [a1111.EXTENSION_LINK_NAME]
        worker_launch = dataclasses.replace(base, port=a1111.free_port(), settings={"disabled_extensions": disabled})
        running.append(a1111.start(worker_launch, work / "worker"))
        config = distributed_config(work / "distributed-config.json", worker_launch.port)
        master_launch = dataclasses.replace(
            base,
            port=a1111.free_port(),
            links=third_party.links([third_party.DISTRIBUTED]),
            extra_args=("--distributed-config", str(config)),
            settings={"return_grid": False},
        )
        running.append(a1111.start(master_launch, work / "master"))
        return Pair(master=running[-1], worker=running[-2])

    try:
        yield start
    finally:
        while running:
            a1111.stop(running.pop())


def distributed(master: a1111.WebUI, seed: int) -> tuple[list[Any], list[str], str]:
    """A batch of 2 on the master: (images, infotexts, the master's log meanwhile), master's image first."""
    mark = master.log.mark()
    result = master.post(
        "/sdapi/v1/txt2img", {**BASE, "prompt": "a lighthouse on a cliff", "seed": seed, "batch_size": 2}
    )
    step_log = master.log.since(mark)
    assert not a1111.tracebacks(step_log), a1111.tracebacks(step_log)[:4000]
    assert isinstance(result, dict), result
    infotexts = json.loads(result["info"])["infotexts"]
    images = [pixels(image) for image in result["images"]]
    assert len(images) == 2 and len(infotexts) == 2, f"{len(images)} images: the worker's share was lost\n{step_log}"
    assert "Worker Label: " + WORKER in infotexts[1], infotexts
    return images, infotexts, step_log


_master_images: dict[int, Any] = {}
"""Seed → the master's own image (a worker with the extension beside it), for the test without."""


def test_a_worker_with_the_extension_makes_the_master_s_image(pairs: Any) -> None:
    pair = pairs(worker_has_extension=True)
    first, first_texts, _ = distributed(pair.master, SEED)
    second, second_texts, _ = distributed(pair.master, SEED + 1)
    _master_images[SEED + 1] = second[0]
    worker_text = WORKER_LABEL.sub("", first_texts[1])
    report("Distributed", "Segmind Vega", f"worker (with the extension) infotext: `{first_texts[1]}`")
    report("Distributed", "Segmind Vega", f"master, same seed: `{second_texts[0]}`")
    report("Distributed", "Segmind Vega", f"images apart by {difference(first[1], second[0]):.3f} of 255 (mean)")
    assert_same(first[1], second[0], "the worker's image for the master's seed")
    assert worker_text == second_texts[0], f"worker: {worker_text}\nmaster: {second_texts[0]}"
    assert "SSD-1B worker" not in first_texts[1]


def test_a_worker_without_the_extension_is_named(pairs: Any) -> None:
    if SEED + 1 not in _master_images:
        _master_images[SEED + 1] = distributed(pairs(worker_has_extension=True).master, SEED + 1)[0][0]
    master_image = _master_images[SEED + 1]
    pair = pairs(worker_has_extension=False)
    images, texts, step_log = distributed(pair.master, SEED)
    assert texts[1].endswith(", SSD-1B worker: extension missing"), texts[1]
    line = next((line for line in step_log.splitlines() if f"Distributed: worker '{WORKER}'" in line), None)
    assert line is not None and "does not have sd-webui-ssd1b" in line, step_log[-3000:]
    apart = difference(images[1], master_image)
    report("Distributed", "Segmind Vega", f"worker without the extension: infotext `{texts[1]}`; console `{line}`")
    report("Distributed", "Segmind Vega", f"its image for seed {SEED + 1} vs the master's: {apart:.1f} of 255 (mean)")
    assert apart > 1.0, "A1111 alone made the master's Vega image: then the warning would be wrong"
