"""The readable table of a result (the JSON line holds the same figures)."""

from __future__ import annotations

from gpubench.profiles import FAMILY_IDS

VAE_VARIANTS = ("untiled", "exact", "exact_cpu_parked", "fast", "taesd")


def _number(value: object, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "—"


def header(result: dict) -> list[str]:
    device, profile = result["device"], result["profile"]
    builder = result.get("unet_builder", {})
    lines = [
        f"device: {device.get('name')} ({device.get('type')}, torch {device.get('torch')}); {profile['mode']} mode"
    ]
    lines.append(f"UNet builder: {builder.get('name')} {builder.get('source', {})}")
    if builder.get("fallback_reason"):
        lines.append(f"  (sgm not used: {builder['fallback_reason']})")
    return lines


def unet_table(result: dict) -> list[str]:
    profile = result["profile"]
    sizes = [str(size) for size in profile["unet_sizes"]]
    lines = [
        "",
        f"UNet: {profile['dtype']}{' autocast' if profile['autocast'] else ''}, batch {profile['batch']} "
        f"(cond + uncond), {profile['steps']} steps; seconds, it/s, peak MiB, time × SDXL",
        f"{'family':14} {'params':>14} " + " ".join(f"{size + '²':>32}" for size in sizes),
    ]
    for family in FAMILY_IDS:
        entry = result.get("unet", {}).get(family, {})
        cells = []
        for size in sizes:
            figures = entry.get("sizes", {}).get(size, {})
            cells.append(
                f"{_number(figures.get('seconds'), '8.3f')} {_number(figures.get('it_s'), '7.2f')} "
                f"{_number(figures.get('peak_mib'), '9.0f')} {_number(figures.get('ratio_to_sdxl'), '5.2f')}"
            )
        lines.append(f"{family:14} {_number(entry.get('params'), '14,')} " + " ".join(f"{cell:>32}" for cell in cells))
    return lines


def vae_table(result: dict) -> list[str]:
    vae = result.get("vae", {})
    lines = [
        "",
        f"VAE ({vae.get('dtype')}, base width {vae.get('base')}): seconds, extra MiB, × untiled memory, "
        "× untiled time, max error / image range (TAESD: speed-up)",
    ]
    for operation in ("decode", "encode"):
        for size, variants in vae.get(operation, {}).items():
            if "untiled" not in variants:
                lines.append(f"{operation} {size}²: {variants}")
                continue
            for name in VAE_VARIANTS:
                figures = variants.get(name, {})
                last = figures.get("speedup") if name == "taesd" else figures.get("max_error_of_range")
                lines.append(
                    f"{operation:6} {size + '²':>6} {name:17} {_number(figures.get('seconds'), '8.3f')} "
                    f"{_number(figures.get('extra_mib'), '9.0f')} {_number(figures.get('peak_ratio'), '6.3f')} "
                    f"{_number(figures.get('time_ratio'), '6.2f')} {_number(last, '9.2e')}"
                )
            check = variants.get("nan_check", {})
            lines.append(
                f"{operation:6} {size + '²':>6} full NaN check    {_number(check.get('seconds'), '8.5f')} s, "
                f"{_number(check.get('share_of_operation'), '.2%')} of the untiled {operation}"
            )
    ladder = vae.get("dtype_ladder", {})
    rungs = " → ".join(
        f"{rung['dtype']} {rung['seconds']:.3f} s ({'finite' if rung['finite'] else 'NaN'})"
        for rung in ladder.get("rungs", [])
    )
    lines.append(f"dtype ladder at {ladder.get('size')}²: {rungs}; used {ladder.get('used')}")
    return lines


def generation_table(result: dict) -> list[str]:
    generation = result.get("generation", {})
    lines = [
        "",
        f"Whole generation at {generation.get('size')}²: {generation.get('habits')}; {generation.get('vae_tiles')}",
    ]
    for family in ("ssd-1b", "sdxl"):
        entry = generation.get(family, {})
        phases = ", ".join(f"{name} {figures['peak_mib']:.0f}" for name, figures in entry.get("phases", {}).items())
        lines.append(
            f"{family:8} peak {_number(entry.get('peak_gib'), '.3f')} GiB allocated ({phases} MiB), "
            f"{_number(entry.get('reserved_gib'), '.3f')} GiB reserved, {_number(entry.get('seconds'), '.2f')} s"
        )
    return lines


def targets_table(result: dict) -> list[str]:
    lines = ["", "Targets"]
    for row in result.get("targets", []):
        lines.append(
            f"  [{row['status']}] {row['text']}: {_number(row['value'], '.4g')} ({row['comparison']} "
            f"{_number(row['limit'], '.4g')})"
        )
    for section, error in result.get("errors", {}).items():
        lines.append(f"  ERROR in {section}: {error.splitlines()[-1] if error else ''}")
    return lines


def render(result: dict) -> str:
    lines = header(result) + unet_table(result) + vae_table(result) + generation_table(result) + targets_table(result)
    lines.append(f"\n{result.get('wall_s')} s in all")
    return "\n".join(lines)
