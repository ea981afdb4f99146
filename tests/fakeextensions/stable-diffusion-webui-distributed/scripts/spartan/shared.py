"""Fake of papuSpartan/stable-diffusion-webui-distributed (8fd65eb), scripts/spartan/shared.py: its `logger`."""

import logging

logger = logging.getLogger("distributed")
LOG_LEVEL = "INFO"
