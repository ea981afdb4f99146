"""IP-Adapter, ControlNet, ControlNet-LLLite and reference of sd-webui-controlnet (Mikubill) on distilled SDXL: the
one adapter to that extension.

sd-webui-controlnet hooks an SDXL IP-Adapter into SDXL's 70 cross-attentions, with SDXL's transformer depths
hard-coded (`StableDiffusionVersion.transformer_ids`, or the same loops inlined in older versions): on SSD-1B or
Vega it indexes transformer blocks that do not exist and stops the generation with a traceback, after hooking part
of the model. While a distilled model is loaded, the hook here lets through exactly the attentions the UNet has,
each with the weights SDXL's numbering gives it (`ssd1b.ip_adapter_layers`), skips the others, undoes everything
the hook did if it fails anyway, and says how much applies: one console line and the infotext entry
`SSD-1B IP-Adapter: 34 of 70 layers`. KOALA (other block numbers) and adapters of another architecture are
reported as not applied.

ControlNet and T2I-Adapter units whose model cannot fit the loaded UNet (an SD 1.x model on an SDXL-family model,
an SDXL one on KOALA's six input blocks) are left out of the UNet hook with a console line and an infotext entry
(`SSD-1B ControlNet: unit 1 not applied: …`) instead of failing mid-sampling. On KOALA the same holds for
reference-only units and the "style align" batch option (they index SDXL's input blocks 4-8).

ControlNet-LLLite units hook only the modules whose transformer block the UNet has (`SSD-1B ControlNet: unit 1
LLLite: 48 of 136 modules`); on KOALA none (said). Every message is also a comment under the image; `describe`
gives the panel's line.

Nothing is imported from sd-webui-controlnet: its modules are looked up in `sys.modules` (A1111 loads that
extension's scripts, which import them as `scripts.…`), when this extension is installed and again once the app
has started. Versions (read from its sources per release):
- v1.1.444 – v1.1.455 (latest, and main): `scripts.ipadapter.plugable_ipadapter.set_model_attn2_replace(model,
  target_cls, function, transformer_id)`, called by `PlugableIPAdapter.hook` once per adapter layer in order.
- v1.1.442 – v1.1.444: the same module, `set_model_patch_replace(model, function, flag, id, trans_id)` with the loops
  inlined in `hook`; v1.1.400 – v1.1.442: the same in `scripts.controlmodel_ipadapter`.
- every version: `scripts.hook.UnetHook.hook(self, model, sd_ldm, control_params, process, …)`; the version string
  is `scripts.controlnet_version.version_flag`.
- `scripts.controlnet_lllite.PlugableControlLLLite.hook(self, model, cond, weight, start, end)`, the class
  `scripts.controlnet_model_guess` imports (read at v1.1.455).

The modules: `versions` (what the loaded extension offers), `lifecycle` (install, uninstall, the panel line),
`ip_adapter`, `lllite`, `units` (ControlNet / T2I-Adapter / reference in the UNet hook), `messages` (the family
label, what is said).
"""

from ssd1b.webui.extensions.controlnet.ip_adapter import AttentionSnapshot, NumberingError, adapter_fit, adapter_widths
from ssd1b.webui.extensions.controlnet.lifecycle import (
    HOOK_MARK,
    describe,
    install,
    is_patched,
    on_app_started,
    patch_controlnet,
    uninstall,
)
from ssd1b.webui.extensions.controlnet.messages import (
    INFOTEXT_CONTROLNET,
    INFOTEXT_IP_ADAPTER,
    Shapes,
    distilled_label,
    family_label,
    write_infotext,
)
from ssd1b.webui.extensions.controlnet.units import (
    CONTROL_OUTPUTS_BY_ARCHITECTURE,
    T2I_INPUT_BLOCKS,
    control_outputs,
    control_problem,
)
from ssd1b.webui.extensions.controlnet.versions import (
    HOOK_MODULE,
    IP_ADAPTER_CODE,
    VERSION_MODULE,
    ControlNetExtension,
    IpAdapterCode,
    probe,
)

__all__ = [
    "CONTROL_OUTPUTS_BY_ARCHITECTURE",
    "HOOK_MARK",
    "HOOK_MODULE",
    "INFOTEXT_CONTROLNET",
    "INFOTEXT_IP_ADAPTER",
    "IP_ADAPTER_CODE",
    "T2I_INPUT_BLOCKS",
    "VERSION_MODULE",
    "AttentionSnapshot",
    "ControlNetExtension",
    "IpAdapterCode",
    "NumberingError",
    "Shapes",
    "adapter_fit",
    "adapter_widths",
    "control_outputs",
    "control_problem",
    "describe",
    "distilled_label",
    "family_label",
    "install",
    "is_patched",
    "on_app_started",
    "patch_controlnet",
    "probe",
    "uninstall",
    "write_infotext",
]
