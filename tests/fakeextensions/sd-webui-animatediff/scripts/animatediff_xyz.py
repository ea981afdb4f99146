"""Fake of continue-revolution/sd-webui-animatediff (a88e889), scripts/animatediff_xyz.py: `xyz_attrs`, the values
an XYZ plot axis sets ("[AnimateDiff] Enabled" → `enable`), applied to the params in `before_process`."""

xyz_attrs: dict = {}
