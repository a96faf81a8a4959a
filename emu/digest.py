"""Short stable hashes for names: one helper for every place that must fit a name in a
limit (interface names, DNS labels, nft chain and set names, HAProxy identifiers)."""

from __future__ import annotations

import hashlib


def short_hash(*parts: object, length: int = 10) -> str:
    """`length` hex characters of sha256 over the parts (strings joined by '/', anything
    else by its repr): stable across runs and machines, unlike hash()."""
    strings = [p for p in parts if isinstance(p, str)]
    text = "/".join(strings) if len(strings) == len(parts) else repr(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit(name: str, limit: int, hash_length: int = 8) -> str:
    """`name` if it fits in `limit` characters, else its head and a hash of the whole,
    so that two long names with the same head stay apart."""
    if len(name) <= limit:
        return name
    return f"{name[: limit - hash_length - 1].rstrip('-')}-{short_hash(name, length=hash_length)}"
