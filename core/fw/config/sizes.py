"""Human-readable sizes, as every size option takes them (CLI, YAML, ``fw.LLM(...)``)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)\s*$")
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str | int) -> int:
    """``"1k"`` -> 1000, ``"1K"`` -> 1024, ``"25.6k"`` -> 25600, ``"2G"`` -> 2**31.

    Lowercase suffixes are decimal and accept decimals; uppercase are binary and do not.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size")
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 4096, 1k = 1000, 1K = 1024, 25.6k, 2G)")
    number, suffix = match.groups()
    power = _POWERS[suffix.lower()]
    if suffix.isupper():
        if "." in number:
            raise ValueError(f"{text!r}: decimals are not allowed with binary suffixes (K, M, G, T)")
        return int(number) * 1024**power
    value = float(number) * 1000**power if "." in number else int(number) * 1000**power
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)
