"""``python -m bench data {fetch,info,import,convert,make,cochlea-check}``.

The bench CLI calls :func:`add_arguments` on its ``data`` sub-parser and then :func:`main`;
InputError is reported there as one line.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command",
                                metavar="{fetch,info,import,convert,make,cochlea-check}",
                                required=True)
    fetch = sub.add_parser("fetch", help="download, verify and unpack SHD or SSC",
                           description="Download SHD or SSC from the Zenke lab, check the md5 "
                           "sums and unpack into the data directory.")
    fetch.add_argument("name", choices=["shd", "ssc"])
    fetch.add_argument("--data-dir", default=None,
                       help="where the .h5 files go (default: $SNN_BENCH_DATA or the user cache)")
    fetch.add_argument("--base-url", default=None, help="mirror of https://zenkelab.org/datasets/")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    info = sub.add_parser("info", help="summarise a dataset's files",
                          description="Sizes, classes, spikes per sample, durations, unit range.")
    info.add_argument("dataset", metavar="PATH_OR_NAME")
    info.add_argument("--data-dir", default=None, help="where named datasets live")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    from .writer_import import add_import_parser

    add_import_parser(sub)
    from .speech.commands import add_speech_commands

    add_speech_commands(sub)


def main(args: argparse.Namespace) -> int:
    if args.data_command == "fetch":
        from .fetch import DEFAULT_URL, fetch

        targets = fetch(args.name, args.data_dir, base_url=args.base_url or DEFAULT_URL,
                        progress=not getattr(args, "no_progress", False))
        for split, path in targets.items():
            print(f"{split}: {path}")
        return 0
    if args.data_command == "info":
        from .info import describe, format_info

        info = describe(args.dataset, args.data_dir)
        if getattr(args, "json", False):
            import json

            print(json.dumps(info, indent=2))
        else:
            print(format_info(info))
        return 0
    if args.data_command == "import":
        from .writer_import import main_import

        return main_import(args)
    from .speech.commands import run_speech_command

    return run_speech_command(args)
