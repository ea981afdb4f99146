"""Fake of modules/timer.py."""

import time


class Timer:
    def __init__(self, print_log=False):
        self.start = time.time()
        self.records = {}
        self.total = 0

    def elapsed(self):
        end = time.time()
        res = end - self.start
        self.start = end
        return res

    def record(self, category, extra_time=0, disable_log=False):
        self.records[category] = self.records.get(category, 0) + self.elapsed() + extra_time
        self.total += extra_time

    def summary(self):
        return f"{self.total:.1f}s"
