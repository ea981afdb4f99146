"""Fake of papuSpartan/stable-diffusion-webui-distributed (read at 8fd65eb), scripts/spartan/world.py.

Mirrors: `Job(worker, batch_size)` with `gallery_map` (the gallery indices of that worker's images, filled when
they are injected), `thread`, `step_override`, `complementary`; `World` with `jobs` (made again by `update(p)`),
`p`, `thin_client_mode`, `enabled`, `enabled_i2i`, `get_workers()`, `master()`, `master_job()`,
`default_batch_size()`, `optimize_jobs(payload)`, `save_config()`. The fake's `add_worker` stands in for the
config file; every worker gets the master's batch size.
"""

from .worker import Worker


class Job:
    def __init__(self, worker, batch_size):
        self.worker = worker
        self.batch_size = batch_size
        self.complementary = False
        self.step_override = None
        self.thread = None
        self.gallery_map = []


class World:
    def __init__(self, verify_remotes=True):
        self.p = None
        self.jobs = []
        self._workers = [Worker(master=True)]
        self.thin_client_mode = False
        self.enabled = True
        self.enabled_i2i = True
        self.verify_remotes = verify_remotes

    def add_worker(self, worker):
        self._workers.append(worker)

    def get_workers(self):
        return list(self._workers)

    def master(self):
        return next(worker for worker in self._workers if worker.master)

    def master_job(self):
        return next(job for job in self.jobs if job.worker.master)

    def default_batch_size(self):
        return self.p.batch_size

    def update(self, p):
        self.p = p
        self.jobs = [Job(worker=worker, batch_size=p.batch_size) for worker in self._workers]

    def optimize_jobs(self, payload):
        pass

    def save_config(self):
        pass
