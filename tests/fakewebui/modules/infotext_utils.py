"""Fake of modules/infotext_utils.py (v1.8.0+): generation_parameters_copypaste renamed, plus `PasteField`.

Like the host, it registers itself under the old name too.
"""

import sys

from modules.generation_parameters_copypaste import (  # noqa: F401
    add_paste_fields,
    connect_paste,
    parse_generation_parameters,
    paste_fields,
    paste_values,
    quote,
    re_param,
    registered_param_bindings,
    reset,
    type_of_gr_update,
    unquote,
)


class PasteField(tuple):
    def __new__(cls, component, target, *, api=None):
        return super().__new__(cls, (component, target))

    def __init__(self, component, target, *, api=None):
        super().__init__()
        self.api = api
        self.component = component
        self.label = target if isinstance(target, str) else None
        self.function = target if callable(target) else None


sys.modules["modules.generation_parameters_copypaste"] = sys.modules[__name__]
