"""Fake of scripts/controlnet_version.py."""

version_flag = "v1.1.300"
