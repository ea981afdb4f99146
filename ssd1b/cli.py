"""Command line: inspect checkpoints without loading them; convert single files into a numbering A1111 can build.

Exit status: 0 when every file was inspected (converted) without a problem, 1 when any file has a problem (the
conversion was refused or failed: no output is left), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from ssd1b.checkpoint import format_bytes
from ssd1b.inspect import Report, expand_paths, inspect_file

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ssd1b", description="SSD-1B / distilled SDXL tools")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect",
        help="tell what checkpoints are, from their safetensors header alone",
        description="Inspect checkpoints from their header alone. A directory means its *.safetensors, recursively.",
    )
    inspect.add_argument("--json", action="store_true", help="print one JSON array instead of a table")
    inspect.add_argument("paths", nargs="+", metavar="PATH")
    convert = commands.add_parser(
        "convert",
        help="a diffusers UNet (with --borrow) or a single file numbered with holes into A1111's single-file layout",
        description="Convert a single-file checkpoint, streaming one tensor at a time; written to a temporary file "
        "and renamed when complete.",
    )
    convert.add_argument("source", metavar="SRC")
    convert.add_argument("output", metavar="OUT.safetensors")
    convert.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="float dtype of the output (default: kept)")
    convert.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    convert.add_argument(
        "--borrow",
        metavar="CHECKPOINT",
        help="an A1111 single file whose text encoders and VAE go with a diffusers UNet (SRC: a UNet file or a "
        "pipeline folder)",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    if args.command == "convert":
        return run_convert(args, out)
    reports = [inspect_file(path) for path in expand_paths(args.paths)]
    if not reports:
        print("no *.safetensors files found in: " + ", ".join(args.paths), file=sys.stderr)
        return EXIT_PROBLEM
    if args.json:
        json.dump([report.to_json() for report in reports], out, indent=2)
        out.write("\n")
    else:
        out.write(format_table(reports))
    return EXIT_OK if all(report.ok for report in reports) else EXIT_PROBLEM


def run_convert(args: argparse.Namespace, out: TextIO) -> int:
    from ssd1b.convert import ConvertError, convert_file, per_percent

    def show(percent: int, _done: int, total: int) -> None:
        print(f"\r{percent:3d}% of {format_bytes(total)}", end="", file=sys.stderr, flush=True)

    progress = per_percent(show)

    try:
        result = convert_file(
            args.source, args.output, args.dtype, overwrite=args.overwrite, progress=progress, borrow=args.borrow
        )
    except (ConvertError, OSError) as error:
        print(f"\nnot converted: {error}", file=sys.stderr)
        return EXIT_PROBLEM
    print(file=sys.stderr)
    size = format_bytes(result.bytes_written)
    out.write(f"{result.path}: {result.family}, {result.renumbered} tensors renamed, {size}\n")
    return EXIT_OK


COLUMNS = ("file", "family", "UNet params", "VAE", "text enc.", "dtype", "size", "status")


def format_table(reports: Sequence[Report]) -> str:
    rows = [COLUMNS, *(_row(report) for report in reports)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _row(report: Report) -> tuple[str, ...]:
    def yes_no(value: bool | None) -> str:
        return "-" if value is None else ("yes" if value else "no")

    params = f"{report.unet_params / 1e9:.2f} B" if report.unet_params else "-"
    return (
        report.path,
        report.label if report.family else "-",
        params,
        yes_no(report.has_vae),
        yes_no(report.has_text_encoders),
        report.dtype or "-",
        format_bytes(report.bytes) if report.bytes is not None else "-",
        "ok" if report.ok else f"PROBLEM: {report.error}",
    )
