"""Fake of modules/launch_utils.py: only what version probes read."""

import fake_host


def git_tag():
    return fake_host.version() if fake_host.is_dev() else f"v{fake_host.version()}"


def commit_hash():
    return "0" * 40
