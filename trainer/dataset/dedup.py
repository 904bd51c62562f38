"""Exact duplicates by normalised text and near-duplicates by MinHash LSH; the first one wins."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

from gateway.answers import normalize_text


def exact_key(turns: Sequence[tuple[str, str]]) -> bytes:
    """A digest of the normalised (role, text) turns; equal digests are duplicates."""
    joined = "\x1e".join(f"{role}\x1f{normalize_text(text)}" for role, text in turns)
    return hashlib.blake2b(joined.encode(), digest_size=16).digest()


def exact_duplicates(keys: Sequence[bytes]) -> list[bool]:
    """True for every key already seen earlier in the sequence."""
    seen: set[bytes] = set()
    flags = []
    for key in keys:
        flags.append(key in seen)
        seen.add(key)
    return flags


def shingles(text: str, size: int) -> set[bytes]:
    """Word n-grams of the normalised text; a text shorter than n is one shingle."""
    words = normalize_text(text).split()
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


def near_duplicates(
    items: Sequence[tuple[str, str]],
    *,
    threshold: float = 0.9,
    shingle_words: int = 3,
    num_perm: int = 128,
    seed: int = 1,
) -> list[bool]:
    """True for each (bucket, text) whose text is ~`threshold` similar to an earlier one.

    Only items in the same bucket are compared (e.g. the same system prompt), so the same
    question asked for two different tasks is not a duplicate. LSH proposes candidates; the
    MinHash estimate confirms them, which removes most of LSH's false positives.
    """
    indexes: dict[str, MinHashLSH] = {}
    signatures: dict[str, np.ndarray] = {}  # kept items' signatures, for confirmation
    flags: list[bool] = []
    # The generator reuses one set of permutations; building them per MinHash dominates.
    minhashes = MinHash.generator(
        (list(shingles(text, shingle_words)) for _, text in items), num_perm=num_perm, seed=seed
    )
    for i, ((bucket, _), minhash) in enumerate(zip(items, minhashes, strict=True)):
        lsh = indexes.get(bucket)
        if lsh is None:
            lsh = indexes[bucket] = MinHashLSH(threshold=threshold, num_perm=num_perm)
        values = np.asarray(minhash.hashvalues)
        duplicate = any(
            float(np.mean(signatures[key] == values)) >= threshold for key in lsh.query(minhash)
        )
        flags.append(duplicate)
        if not duplicate:
            key = str(i)
            lsh.insert(key, minhash)
            signatures[key] = values
    return flags
