"""Built base models on disk: a manifest of file checksums, verified on reuse, published atomically.

A build writes into a temporary sibling directory and renames it into place, so a crash or a
concurrent build never leaves a half-written model at the final path; a file lock beside the
directory makes a second builder wait for the first and then reuse its result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

MANIFEST = "distill_model.json"
_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """$DISTILL_CACHE, else $XDG_CACHE_HOME/distill, else ~/.cache/distill."""
    explicit = os.environ.get("DISTILL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "distill"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(directory: Path) -> dict[str, str]:
    """{relative path: sha256} of every file but the manifest, sorted by path."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in files}


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def problems(directory: Path, expected: Mapping[str, Any]) -> list[str]:
    """Why `directory` is not a valid build of `expected` (its identity); empty when it is."""
    manifest = read_manifest(directory)
    if manifest is None:
        return [f"{directory / MANIFEST} is missing or unreadable"]
    found: list[str] = []
    for key, value in expected.items():
        if manifest.get(key) != value:
            found.append(f"{key} is {manifest.get(key)!r}, expected {value!r}")
    recorded = manifest.get("files")
    if not isinstance(recorded, dict) or not recorded:
        return [*found, "the manifest lists no files"]
    actual = checksums(directory)
    for name, digest in recorded.items():
        if name not in actual:
            found.append(f"{name} is missing")
        elif actual[name] != digest:
            found.append(f"{name} does not match its checksum")
    found += [f"{name} is not in the manifest" for name in actual.keys() - recorded.keys()]
    return found


def _share(directory: Path) -> None:
    """Readable by everyone like any cache (mkdtemp and some writers create 0700/0600)."""
    directory.chmod(0o755)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def build_cached(
    out_dir: Path,
    identity: Mapping[str, Any],
    build: Callable[[Path], None],
    *,
    force: bool = False,
) -> tuple[Path, bool]:
    """The verified model at `out_dir`, built with `build(tmp_dir)` when absent or invalid.

    Returns (path, built). A non-empty `out_dir` that was never a Distill build is refused
    rather than replaced, so a wrong --out cannot delete someone's files.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir.parent / f".{out_dir.name}.lock")):
        if out_dir.exists():
            if not force and not problems(out_dir, identity):
                return out_dir, False
            if any(out_dir.iterdir()) and read_manifest(out_dir) is None:
                raise FileExistsError(
                    f"{out_dir} holds files that are not a Distill model build; "
                    "choose another --out (nothing was changed)"
                )
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        try:
            build(tmp)
            _share(tmp)
            manifest = {**identity, "files": checksums(tmp)}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if out_dir.exists():  # an invalid earlier build: move it aside, then drop it
                old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
                out_dir.rename(old / "model")
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out_dir, True
