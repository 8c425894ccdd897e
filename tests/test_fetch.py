"""Download: a local HTTP server (127.0.0.1 only) serving a small .h5.gz in the SHD schema."""

from __future__ import annotations

import gzip
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from methods.api import InputError
from datasets import open_dataset
from datasets.fetch import fetch, parse_md5sums
from datasets.h5 import read_split, write_h5


class Server:
    """Serves ``files`` (name -> bytes) with Range support; ``cut_after`` (name -> bytes) makes the
    first request for that file send only that many bytes and close the connection."""

    def __init__(self, files: dict[str, bytes], cut_after: dict[str, int] | None = None):
        self.files = files
        self.cut_after = dict(cut_after or {})
        self.requests: list[tuple[str, str | None]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                owner.requests.append((name, self.headers.get("Range")))
                if name not in owner.files:
                    self.send_error(404)
                    return
                body = owner.files[name]
                start = 0
                match = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Length", str(len(part)))
                cut = owner.cut_after.pop(name, None)
                if cut is not None:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(part[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.end_headers()
                self.wfile.write(part)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/datasets/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """shd_{train,test}.h5.gz in the schema, and an md5sums.txt listing them."""
    root = tmp_path_factory.mktemp("published")
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 30), ("test", 10)):
        lengths = rng.integers(50, 400, n)
        times = [np.sort(rng.uniform(0, 1.2, k)).astype(np.float32) for k in lengths]
        units = [rng.integers(0, 700, k) for k in lengths]
        path = write_h5(root / f"shd_{split}.h5", times, units, np.arange(n) % 20,
                        keys=[f"digit-{i}" for i in range(20)])
        files[f"shd_{split}.h5.gz"] = gzip.compress(path.read_bytes(), mtime=0)
    sums = "".join(f"{hashlib.md5(b).hexdigest()}  {name}\n" for name, b in files.items())
    files["md5sums.txt"] = sums.encode()
    return root, files


def test_parse_md5sums():
    text = "d41d8cd98f00b204e9800998ecf8427e  shd_train.h5.gz\nnot a line\n" \
           "0123456789ABCDEF0123456789abcdef *sub/ssc_test.h5.gz\n"
    assert parse_md5sums(text) == {
        "shd_train.h5.gz": "d41d8cd98f00b204e9800998ecf8427e",
        "ssc_test.h5.gz": "0123456789abcdef0123456789abcdef",
    }


def test_fetch_downloads_verifies_and_unpacks(tmp_path, published):
    root, files = published
    with Server(files) as server:
        out = fetch("shd", tmp_path / "data", base_url=server.url, progress=False)
    assert sorted(out) == ["test", "train"]
    for split in ("train", "test"):
        assert out[split].read_bytes() == (root / f"shd_{split}.h5").read_bytes()
    assert not list((tmp_path / "data").glob("*.part")) and not list((tmp_path / "data").glob(".*tmp"))
    assert [name for name, _ in server.requests] == ["md5sums.txt", "shd_train.h5.gz", "shd_test.h5.gz"]
    ds = open_dataset("shd", steps=100, data_dir=tmp_path / "data")
    assert ds.spec.n_classes == 20 and ds.spec.class_names[3] == "digit-3"
    # present files are not downloaded again
    with Server(files) as again:
        fetch("shd", tmp_path / "data", base_url=again.url, progress=True)
    assert again.requests == []


def test_interrupted_download_resumes(tmp_path, published):
    _, files = published
    size = len(files["shd_train.h5.gz"])
    with Server(files, cut_after={"shd_train.h5.gz": size // 3}) as server:
        out = fetch("shd", tmp_path, base_url=server.url, progress=False)
    train = [r for name, r in server.requests if name == "shd_train.h5.gz"]
    assert train == [None, f"bytes={size // 3}-"]
    assert read_split(out["train"]).n_samples == 30


def test_resume_across_calls(tmp_path, published):
    """A .part left by an earlier, killed fetch is continued, not restarted."""
    _, files = published
    gz = files["shd_test.h5.gz"]
    (tmp_path / "shd_test.h5.gz.part").write_bytes(gz[:100])
    md5s = parse_md5sums(files["md5sums.txt"].decode())
    with Server(files) as server:
        fetch("shd", tmp_path, base_url=server.url, progress=False, md5s=md5s)
    assert ("shd_test.h5.gz", "bytes=100-") in server.requests
    assert read_split(tmp_path / "shd_test.h5").n_samples == 10


def test_bad_checksum_is_refused(tmp_path, published):
    _, files = published
    md5s = parse_md5sums(files["md5sums.txt"].decode())
    md5s["shd_train.h5.gz"] = "0" * 32
    with Server(files) as server:
        with pytest.raises(InputError, match=r"checksum mismatch for shd_train\.h5\.gz") as info:
            fetch("shd", tmp_path, base_url=server.url, progress=False, md5s=md5s)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "shd_train.h5.gz.part").exists()
    assert not (tmp_path / "shd_train.h5").exists()


def test_server_errors_are_input_errors(tmp_path, published):
    _, files = published
    without = {k: v for k, v in files.items() if k != "shd_test.h5.gz"}
    with Server(without) as server:
        with pytest.raises(InputError, match=r"cannot download .*shd_test\.h5\.gz: HTTP 404"):
            fetch("shd", tmp_path, base_url=server.url, progress=False)
    with pytest.raises(InputError, match=r"unknown dataset 'mnist' to fetch"):
        fetch("mnist", tmp_path, progress=False)
    with Server({}) as server:
        with pytest.raises(InputError, match=r"md5sums\.txt: HTTP 404"):
            fetch("ssc", tmp_path, base_url=server.url, progress=False)


def test_a_damaged_present_file_is_verified_and_downloaded_again(tmp_path, published, capsys):
    root, files = published
    with Server(files) as server:
        out = fetch("shd", tmp_path / "data", base_url=server.url, progress=False)
    good = out["train"].read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte: still the right size
    out["train"].write_bytes(bytes(damaged))
    with Server(files) as again:
        fetch("shd", tmp_path / "data", base_url=again.url, progress=False)
    assert [name for name, _ in again.requests] == ["md5sums.txt", "shd_train.h5.gz"]
    assert out["train"].read_bytes() == good
    assert "is damaged" in capsys.readouterr().err
