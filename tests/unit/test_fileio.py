import os

import pytest

from ssd1b.fileio import StampCache, file_stamp


def test_a_value_is_computed_once_per_file_version_and_key(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"one")
    cache: StampCache[bytes] = StampCache()
    reads = []

    def read(file):
        reads.append(file)
        return open(file, "rb").read()

    assert cache.get(path, read) == b"one"
    assert cache.get(path, read) == b"one"
    assert cache.get(path, read, "other key") == b"one"
    assert len(reads) == 2
    path.write_bytes(b"three")  # another size: another version
    assert cache.get(path, read) == b"three"
    stamp = file_stamp(path)
    os.utime(path, ns=(stamp[1] + 10**9, stamp[1] + 10**9))  # same size, another mtime
    assert cache.get(path, read) == b"three"
    assert len(reads) == 4


def test_failures_are_raised_and_not_cached(tmp_path):
    cache: StampCache[int] = StampCache()
    with pytest.raises(OSError):
        cache.get(tmp_path / "missing", lambda file: 1)
    path = tmp_path / "b"
    path.write_text("x")
    with pytest.raises(ValueError):
        cache.get(path, lambda file: int("not a number"))
    assert cache.get(path, lambda file: 7) == 7


def test_the_cache_is_bounded(tmp_path):
    cache: StampCache[str] = StampCache(max_entries=3)
    files = [tmp_path / f"{n}" for n in range(5)]
    for file in files:
        file.write_text(file.name)
        cache.get(file, lambda f: f.read_text())
    assert len(cache._entries) <= 3
