"""md5 of data files, cached on (path, size, mtime_ns, inode) in a small JSON file, so a large file is
hashed once rather than at every run."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CACHE_NAME = "md5-cache.json"


def md5_of_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _load(cache_file: Path) -> dict:
    try:
        data = json.loads(cache_file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def cached_md5(path: str | os.PathLike, cache_dir: str | os.PathLike | None) -> str:
    """md5 of ``path``; reuses the value in ``cache_dir/md5-cache.json`` when size and mtime match.

    A cache that cannot be read or written is ignored (the md5 is then computed every time).
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = str(path)
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}
    if cache_dir is None:
        return md5_of_file(path)
    cache_file = Path(cache_dir) / CACHE_NAME
    cache = _load(cache_file)
    entry = cache.get(key)
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stamp.items()) and "md5" in entry:
        return str(entry["md5"])
    value = md5_of_file(path)
    cache = _load(cache_file)  # re-read: another process may have added entries meanwhile
    cache = {k: v for k, v in cache.items() if os.path.exists(k)}  # forget deleted files
    cache[key] = {**stamp, "md5": value}
    tmp = cache_file.with_name(f".{CACHE_NAME}.{os.getpid()}.tmp")
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(tmp, cache_file)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
    return value


def md5_of_json(obj) -> str:
    return hashlib.md5(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
