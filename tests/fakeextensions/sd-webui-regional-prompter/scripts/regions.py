"""Fake of scripts/regions.py (hako-mikan/sd-webui-regional-prompter, read at be62345): the prompt keys only."""

KEYROW = "ADDROW"
KEYCOL = "ADDCOL"
KEYBASE = "ADDBASE"
KEYCOMM = "ADDCOMM"
KEYBRK = "BREAK"
KEYPROMPT = "ADDP"
ALLALLKEYS = [KEYCOMM, KEYROW, KEYCOL, KEYBASE, KEYPROMPT, KEYBRK, "AND"]
