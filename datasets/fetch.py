"""Download the published SHD/SSC files (Cramer et al. 2020) from the Zenke lab.

For each split, ``<name>_<split>.h5.gz`` is downloaded into ``<data_dir>/<file>.part`` (an
interrupted download resumes with an HTTP Range request, within one call and across calls),
its md5 is checked against the published ``md5sums.txt`` (a mismatch deletes the file and raises
InputError), and it is decompressed to ``<data_dir>/<name>_<split>.h5`` under a temporary name
and renamed, so a reader never sees half a file. Files already present are left alone.

Only the standard library's urllib is used.
"""

from __future__ import annotations

import gzip
import http.client
import os
import re
import shutil
import sys
import socket
import urllib.error
import urllib.request
from pathlib import Path

from .types import InputError

from .hashing import md5_of_file
from .catalog import OFFICIAL

DEFAULT_URL = "https://zenkelab.org/datasets/"
MD5_FILE = "md5sums.txt"
CHUNK = 1 << 16
USER_AGENT = "snn-bench-fetch/1"


def gz_names(name: str) -> dict[str, str]:
    """split -> published file name, e.g. {"train": "shd_train.h5.gz", ...}."""
    if name not in OFFICIAL:
        raise InputError(f"unknown dataset {name!r} to fetch; known: {', '.join(OFFICIAL)}")
    return {split: f"{name}_{split}.h5.gz" for split in OFFICIAL[name]}


def _url(base_url: str, file: str) -> str:
    return base_url.rstrip("/") + "/" + file


def _open(url: str, timeout: float, headers: dict | None = None):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(request, timeout=timeout)


def parse_md5sums(text: str) -> dict[str, str]:
    """``md5sum`` output ("<hex>  <file>" per line) -> {file name: md5}."""
    out = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([0-9a-fA-F]{32})\s+\*?(\S.*?)\s*$", line)
        if match:
            out[os.path.basename(match.group(2))] = match.group(1).lower()
    return out


def fetch_md5s(base_url: str = DEFAULT_URL, timeout: float = 60.0) -> dict[str, str]:
    url = _url(base_url, MD5_FILE)
    try:
        with _open(url, timeout) as response:
            text = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        raise InputError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"cannot download {url}: {reason}") from None
    sums = parse_md5sums(text)
    if not sums:
        raise InputError(f"{url} lists no md5 sums")
    return sums


class _Progress:
    """rich progress bar, or nothing."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def task(self, description: str, total: int | None, completed: int):
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=total, completed=completed)

    def update(self, task, **kwargs):
        if self._progress is not None and task is not None:
            self._progress.update(task, **kwargs)

    def log(self, text: str):
        if self._progress is not None:
            self._progress.console.print(text)


def _download_once(url: str, part: Path, timeout: float, bar: _Progress, task) -> bool:
    """One request appending to ``part`` (Range from its size). True when the file is complete,
    False when the connection broke off (the caller retries)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = _open(url, timeout, headers)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is already whole
            return True
        raise InputError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"cannot download {url}: {reason}") from None
    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if have and status == 206:
            mode = "ab"
            match = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) != have:
                raise InputError(f"cannot resume {url}: the server answered another range")
        else:  # the server ignored the Range header: start over
            mode, have = "wb", 0
        total = None if length is None else have + length
        bar.update(task, total=total, completed=have)
        received = 0
        with open(part, mode) as out:
            try:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(task, advance=len(block))
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError):
                return False
        if length is not None and received < length:
            return False
    return True


def download(url: str, part: Path, *, timeout: float = 60.0, attempts: int = 5, bar=None, label="") -> Path:
    """Download ``url`` into ``part``, resuming what is there; retry a broken connection."""
    bar = bar or _Progress(False)
    have = part.stat().st_size if part.exists() else 0
    task = bar.task(label or part.name, None, have)
    for _ in range(attempts):
        if _download_once(url, part, timeout, bar, task):
            return part
    raise InputError(
        f"download of {url} kept breaking off after {attempts} attempts; run the fetch again to resume"
    )


def _decompress(gz: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK * 16)
        os.replace(tmp, target)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot decompress {gz}: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _sidecar(target: Path) -> Path:
    """The md5 of a decompressed file, written when it was fetched."""
    return target.with_name(target.name + ".md5")


def _intact(target: Path, bar: "_Progress") -> bool:
    """Whether an existing file is whole: its md5 equals the one recorded when it was fetched
    (a file put there by hand, without that record, must at least read in the published schema).
    A damaged file is removed, so that it is downloaded again."""
    if not target.is_file():
        return False
    sidecar = _sidecar(target)
    if sidecar.is_file():
        ok = md5_of_file(target) == sidecar.read_text().strip()
    else:
        from .h5 import read_split

        try:
            read_split(target)
            ok = True
        except InputError:
            ok = False
    if not ok:
        bar.log(f"{target} is damaged (checksum or schema); downloading it again")
        print(f"warning: {target} is damaged; downloading it again", file=sys.stderr)
        target.unlink()
        sidecar.unlink(missing_ok=True)
    return ok


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    base_url: str = DEFAULT_URL,
    progress: bool = True,
    *,
    md5s: dict[str, str] | None = None,
    timeout: float = 60.0,
    attempts: int = 5,
) -> dict[str, Path]:
    """Download, verify and decompress SHD or SSC into ``data_dir``; return split -> .h5 path.

    ``md5s`` ({file name: md5}) replaces the published md5sums.txt (tests, mirrors).
    """
    files = gz_names(name)
    if data_dir is None:
        from .paths import data_dir as default_dir

        data_dir = default_dir()
    directory = Path(data_dir).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {directory}: {exc.strerror}") from None
    targets = {split: directory / gz[: -len(".gz")] for split, gz in files.items()}
    with _Progress(progress) as bar:
        todo = {split: gz for split, gz in files.items() if not _intact(targets[split], bar)}
        if todo and md5s is None:
            md5s = fetch_md5s(base_url, timeout)
        for split, gz in files.items():
            if split not in todo:
                bar.log(f"{targets[split]} already present (verified)")
                continue
            expected = (md5s or {}).get(gz)
            if expected is None:
                raise InputError(f"no md5 sum for {gz} in {_url(base_url, MD5_FILE)}")
            part = directory / f"{gz}.part"
            download(_url(base_url, gz), part, timeout=timeout, attempts=attempts, bar=bar, label=gz)
            actual = md5_of_file(part)
            if actual != expected.lower():
                part.unlink()
                raise InputError(
                    f"checksum mismatch for {gz}: expected {expected}, got {actual}; "
                    "the download was deleted, run the fetch again"
                )
            _decompress(part, targets[split])
            _sidecar(targets[split]).write_text(md5_of_file(targets[split]) + "\n")
            part.unlink()
            bar.log(f"{targets[split]} ready")
    return targets
