"""Built models are cached: checksums checked on reuse, rebuilt when damaged, never half-made."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from trainer.models.cache import MANIFEST, build_cached, checksums, problems

IDENTITY = {"name": "fake", "source_sha256": "abc"}


class FakeBuild:
    """Writes two files; counts its calls; can fail midway or take its time."""

    def __init__(self, *, fail: bool = False, delay: float = 0.0) -> None:
        self.calls = 0
        self.fail = fail
        self.delay = delay

    def __call__(self, out: Path) -> None:
        self.calls += 1
        (out / "config.json").write_text('{"a": 1}')
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("build broke")
        (out / "sub").mkdir()
        (out / "sub" / "weights.bin").write_bytes(b"\x00" * 100)


def test_builds_then_reuses(tmp_path: Path) -> None:
    build = FakeBuild()
    path, built = build_cached(tmp_path / "m", IDENTITY, build)
    assert built and build.calls == 1
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["name"] == "fake" and set(manifest["files"]) == {
        "config.json",
        "sub/weights.bin",
    }
    assert manifest["files"] == checksums(path)
    assert problems(path, IDENTITY) == []
    assert build_cached(tmp_path / "m", IDENTITY, build) == (path, False)
    assert build.calls == 1
    assert (path.stat().st_mode & 0o777) == 0o755


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: (p / "sub" / "weights.bin").write_bytes(b"\x01" * 100), "checksum"),
        (lambda p: (p / "config.json").unlink(), "config.json is missing"),
        (lambda p: (p / "extra.txt").write_text("x"), "extra.txt is not in the manifest"),
        (lambda p: (p / MANIFEST).write_text("{"), "missing or unreadable"),
    ],
)
def test_damaged_build_is_found_and_rebuilt(tmp_path: Path, damage: object, reason: str) -> None:
    build = FakeBuild()
    path, _ = build_cached(tmp_path / "m", IDENTITY, build)
    damage(path)  # type: ignore[operator]
    assert any(reason in p for p in problems(path, IDENTITY))
    if reason == "missing or unreadable":  # no manifest: not provably ours, so refused
        with pytest.raises(FileExistsError, match="not a Distill model build"):
            build_cached(path, IDENTITY, build)
        return
    assert build_cached(path, IDENTITY, build) == (path, True)
    assert problems(path, IDENTITY) == [] and build.calls == 2


def test_another_identity_is_rebuilt(tmp_path: Path) -> None:
    build = FakeBuild()
    path, _ = build_cached(tmp_path / "m", IDENTITY, build)
    other = dict(IDENTITY, source_sha256="def")
    assert problems(path, other) == ["source_sha256 is 'abc', expected 'def'"]
    assert build_cached(path, other, build)[1] and build.calls == 2
    assert build_cached(path, other, build, force=True)[1] and build.calls == 3


def test_foreign_directory_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="choose another --out"):
        build_cached(out, IDENTITY, FakeBuild())
    assert (out / "notes.txt").read_text() == "keep me"


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="build broke"):
        build_cached(tmp_path / "m", IDENTITY, FakeBuild(fail=True))
    assert not (tmp_path / "m").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    build = FakeBuild(delay=0.3)
    results: list[tuple[Path, bool]] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(build_cached(tmp_path / "m", IDENTITY, build))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert build.calls == 1
    assert sorted(built for _, built in results) == [False, False, True]
    assert problems(tmp_path / "m", IDENTITY) == []
