"""Command line: `sluice replay|extract|run|top|host` (main.py, live.py, top.py)."""
