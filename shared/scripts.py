"""Lua scripts kept as files in a package's `lua/` directory (`fetcher/lua/`, `notifier/lua/`, `processor/lua/`,
`shared/lua/`).

Each file says in its header comment what its KEYS and ARGV are. A file is read once per process. A script
made of several files (a function file, then the script that calls it) is their texts joined in order.
"""
from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def source(package: str, name: str) -> str:
    """The text of `<package>/lua/<name>.lua`."""
    return files(package).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
