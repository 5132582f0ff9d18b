"""Opaque, time-ordered ids and the shard a key lives in."""

from __future__ import annotations

import os
import time
import zlib

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """`prefix_` + 10 chars of milliseconds + 16 random chars: sortable by creation time."""
    millis = int(time.time() * 1000)
    randomness = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_b32(millis, 10)}{_b32(randomness, 16)}"


def shard_of(key: str, shards: int) -> int:
    """A stable shard number in [0, shards) for a key (CRC32, the same on every machine)."""
    return zlib.crc32(key.encode("utf-8")) % shards
