"""Command line: inspect checkpoints without loading them; convert diffusers pipelines and files numbered with holes
into A1111's single-file layout. Every bad input is answered in one line, with the exit status of `EXIT_HELP`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from ssd1b import __version__
from ssd1b.checkpoint import format_bytes
from ssd1b.inspect import Report, inspect_listed
from ssd1b.interrupts import EXIT_BROKEN_PIPE, EXIT_SIGINT, Interrupted, say, silence_stdout, stopping_signals_raise
from ssd1b.model_files import listed_files

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_PYTHON = 0, 1, 2, 3

EXIT_HELP = f"""exit status:
  {EXIT_OK}    every file inspected without a problem; the conversion was written
  {EXIT_PROBLEM}    a file has a problem or was not inspected, or the conversion was refused or failed
       (nothing is left behind)
  {EXIT_USAGE}    usage: bad arguments, or OUT names something that cannot be written
  {EXIT_PYTHON}    this Python cannot do it: older than 3.10, or without torch / numpy for this conversion
       (use the WebUI's Python: stable-diffusion-webui/venv/bin/python -m ssd1b …)
  {EXIT_SIGINT}  stopped by Ctrl-C; 143 by SIGTERM, 129 by SIGHUP (a conversion leaves nothing behind)
  {EXIT_BROKEN_PIPE}  the reader of the output went away (… | head)
"""

INSPECT_HELP = """A FOLDER stands for the files A1111's model list holds from it: every .safetensors and .ckpt (any
case of the suffix), in its subfolders and in folders linked into it, in A1111's order. Files that are listed but
not inspected say why: a .ckpt is a pickle and is never opened; a broken link; a link back into its own folder (a
loop). Only the header is read (no tensor byte), with the Python standard library alone.

A file of a diffusers pipeline folder (unet/diffusion_pytorch_model.safetensors …) is named as such, with the
convert command that makes a single file of the pipeline. A VAE, a LoRA, a ControlNet or an IP-Adapter is named as
such, with the architecture it was made for.
"""

CONVERT_HELP = """SRC is one of:
  - a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/, text_encoder_2/, as save_pretrained
    writes it, by transformers 4.x or 5.x; one file per component, its fp16 variant, or shards): SSD-1B, Segmind
    Vega, KOALA-700M / 1B, SDXL, any depth-pruned SDXL, the SDXL refiner;
  - a diffusers UNet file, or a pipeline folder, with --borrow CHECKPOINT: the text encoders and VAE come from the
    A1111 single file CHECKPOINT (e.g. your SDXL base);
  - a single file whose UNet blocks are numbered with holes (diffusers' converter on KOALA).
Everything is checked before a byte is written: OUT (a .safetensors name in an existing, writable folder), the
input, and that this Python has what the conversion needs (a dtype change needs torch: run it with the WebUI's
Python). The output is written to a hidden temporary file next to OUT and renamed when complete and verified.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ssd1b",
        description=f"sd-webui-ssd1b {__version__}: SSD-1B / Segmind Vega / KOALA / distilled SDXL checkpoint tools",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sd-webui-ssd1b {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{inspect,convert}")
    _add_inspect(commands)
    _add_convert(commands)
    return parser


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="tell what checkpoints are, from their safetensors header alone",
        description="Tell what checkpoints are, from their safetensors header alone.\n\n" + INSPECT_HELP,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("--json", action="store_true", help="print one JSON array (always one) instead of a table")
    inspect.add_argument("paths", nargs="+", metavar="PATH", help="a file or a FOLDER")


def _add_convert(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert",
        help="a diffusers pipeline folder, a diffusers UNet (with --borrow) or a file numbered with holes into "
        "A1111's single-file layout",
        description="Convert into one A1111 single file, streaming.\n\n" + CONVERT_HELP,
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("source", metavar="SRC", help="a pipeline folder, a diffusers UNet file or a single file")
    convert.add_argument("output", metavar="OUT.safetensors", help="the single file to write")
    convert.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="float dtype of the output (default: kept)")
    convert.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    convert.add_argument(
        "--copy", action="store_true", help="write OUT even when SRC needs no conversion (a verified copy)"
    )
    convert.add_argument(
        "--borrow",
        metavar="CHECKPOINT",
        help="an A1111 single file whose text encoders and VAE go with a diffusers UNet (SRC: a UNet file or a "
        "pipeline folder)",
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    command = run_convert if args.command == "convert" else run_inspect
    return ending_quietly(lambda: command(args, out))


def ending_quietly(command: Callable[[], int]) -> int:
    """Run `command`; Ctrl-C, SIGTERM, SIGHUP and a closed output pipe end it with one line and their exit status."""
    try:
        with stopping_signals_raise():
            return command()
    except KeyboardInterrupt:
        say("stopped (Ctrl-C)")
        return EXIT_SIGINT
    except Interrupted as stop:
        say(f"stopped ({stop.name})")
        return stop.exit_status
    except BrokenPipeError:
        silence_stdout()
        return EXIT_BROKEN_PIPE


def run_inspect(args: argparse.Namespace, out: TextIO) -> int:
    listed = list(listed_files(args.paths))
    reports = [inspect_listed(entry) for entry in listed]
    if not reports:
        say("no .safetensors or .ckpt files found in: " + ", ".join(args.paths))
    if args.json:
        json.dump([report.to_json() for report in reports], out, indent=2)
        out.write("\n")
    elif reports:
        skipped = {str(entry.path) for entry in listed if entry.skipped}
        out.write(format_table(reports, skipped))
    out.flush()
    return EXIT_OK if reports and all(report.ok for report in reports) else EXIT_PROBLEM


class _ProgressLine:
    """`NN% of SIZE` rewritten in place on stderr; remembers whether it showed anything (a last line then needs a
    line break first)."""

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, percent: int, _done: int, total: int) -> None:
        self.shown = True
        print(f"\r{percent:3d}% of {format_bytes(total)}", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.shown:
            say("")
            self.shown = False


def run_convert(args: argparse.Namespace, out: TextIO) -> int:
    from ssd1b.convert import ConvertError, MissingLibraryError, OutputNameError, convert_file, per_percent

    line = _ProgressLine()
    try:
        result = convert_file(
            args.source,
            args.output,
            args.dtype,
            overwrite=args.overwrite,
            progress=per_percent(line),
            borrow=args.borrow,
            copy=args.copy,
        )
    except (ConvertError, OSError) as error:
        line.end()
        say(f"not converted: {error}")
        if isinstance(error, OutputNameError):
            return EXIT_USAGE
        return EXIT_PYTHON if isinstance(error, MissingLibraryError) else EXIT_PROBLEM
    except BaseException:
        line.end()
        raise
    line.end()
    size = format_bytes(result.bytes_written)
    out.write(f"{result.path}: {result.family}, {result.renumbered} tensors renamed, {size}\n")
    return EXIT_OK


COLUMNS = ("file", "family", "UNet params", "VAE", "text enc.", "dtype", "size", "status")


def format_table(reports: Sequence[Report], skipped: set[str] | None = None) -> str:
    skipped = skipped or set()
    rows = [COLUMNS, *(_row(report, report.path in skipped) for report in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _row(report: Report, skipped: bool) -> tuple[str, ...]:
    def yes_no(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "no")

    params = f"{report.unet_params / 1e9:.2f} B" if report.unet_params else "-"
    status = "ok" if report.ok else (report.error or "") if skipped else f"PROBLEM: {report.error}"
    return (
        report.path,
        report.label if report.family else "-",
        params,
        yes_no(report.has_vae),
        yes_no(report.has_text_encoders),
        report.dtype or "-",
        format_bytes(report.bytes) if report.bytes is not None else "-",
        status,
    )
