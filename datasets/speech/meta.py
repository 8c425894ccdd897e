"""What the converter stored in ``/extra/meta_info``, as lines for ``bench data info``."""

from __future__ import annotations

import json


def held_out_lines(info: dict) -> list[str]:
    """The held-out speakers and the converter's rate of files written by ``data convert``."""
    import h5py

    lines = []
    test = info.get("splits", {}).get("test")
    if not test:
        return lines
    try:
        with h5py.File(test["file"], "r") as f:
            attrs = f["extra/meta_info"].attrs if "extra/meta_info" in f else {}
            if "test_speakers" in attrs:
                lines.append("held-out speakers: " + ", ".join(json.loads(attrs["test_speakers"])))
            if "converter" in attrs:
                conv = json.loads(attrs["converter"])
                lines.append(f"converted by {conv['converter']} v{conv['version']} at "
                             f"{conv['rate_hz']} Hz, {conv['channels']} channels, seed {conv['seed']}")
    except (OSError, KeyError, ValueError, TypeError):
        return []
    return lines
