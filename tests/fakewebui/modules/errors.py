"""Fake of modules/errors.py: prints what the real one prints, without the traceback formatting."""

import sys
import traceback


def report(message: str, *, exc_info: bool = False) -> None:
    print(f"*** {message}", file=sys.stderr)
    if exc_info:
        traceback.print_exc()


def display(e: Exception, task, *, full_traceback=False):
    print(f"{task or 'error'}: {type(e).__name__}", file=sys.stderr)
    print(str(e), file=sys.stderr)


def display_once(e: Exception, task):
    display(e, task)


def run(code, task):
    try:
        code()
    except Exception as e:
        display(e, task)


def print_error_explanation(message):
    lines = message.strip().split("\n")
    max_len = max(len(x) for x in lines)
    print("=" * max_len, file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    print("=" * max_len, file=sys.stderr)
