"""sd-webui-ssd1b: SSD-1B, Segmind Vega and any depth-pruned SDXL as first-class models.

The package root holds the host-free core; `ssd1b.webui` is the only part that talks to A1111.
"""

__version__ = "0.1.0"
