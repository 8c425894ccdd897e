"""The speech commands of ``python -m bench data``: ``convert``, ``make`` and ``cochlea-check``."""

from __future__ import annotations

import argparse

from .audio import DEFAULT_MAX_SECONDS, DEFAULT_RATE


def add_speech_commands(sub) -> None:
    convert = sub.add_parser(
        "convert", help="turn audio clips into SHD-format spikes (the SHD cochlea)",
        description="Convert a folder of class subfolders (speaker = file name up to the first "
        "'_') or a CSV manifest (path,label,speaker,split) into PREFIX_train.h5 / PREFIX_test.h5 "
        "(+ PREFIX_valid.h5) in the SHD schema. Resumable: rerun the same command after an "
        "interruption.")
    convert.add_argument("audio", metavar="AUDIO", help="folder of class subfolders or .csv manifest")
    convert.add_argument("--out", required=True, metavar="PREFIX", help="output prefix")
    convert.add_argument("--rate", type=int, default=DEFAULT_RATE,
                         help=f"audio rate every clip is resampled to (default {DEFAULT_RATE})")
    convert.add_argument("--channels", type=int, default=700, help="cochlea channels (default 700)")
    convert.add_argument("--seed", type=int, default=0, help="seed of the stochastic fibres")
    convert.add_argument("--jobs", type=int, default=1, help="worker processes")
    convert.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                         help=f"refuse longer clips (default {DEFAULT_MAX_SECONDS:g})")
    convert.add_argument("--test-speakers", default=None,
                         help="comma-separated speakers held out for test (default: the last "
                         "fifth in sorted order) for clips without a split")
    convert.add_argument("--no-progress", action="store_true", help="no progress bar")

    make = sub.add_parser("make", help="generate a speech dataset on this machine",
                          description="Synthesise and convert a named speech dataset.")
    make.add_argument("name", choices=["spoken-digits"])
    make.add_argument("--data-dir", default=None, help="where it goes (default: the data dir)")
    make.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    make.add_argument("--seed", type=int, default=0, help="seed of jitter, noise and fibres")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")

    check = sub.add_parser(
        "cochlea-check", help="speed and fidelity of the cochlea against the lauscher package",
        description="Convert the same short clips with lauscher 1.0.1 and this suite's cochlea at "
        "the same rate; print the CPU-time ratio, per-channel spike-count correlation and the "
        "ratio of spike totals.")
    check.add_argument("--clips", type=int, default=3, help="number of clips (default 3)")
    check.add_argument("--seconds", type=float, default=0.4, help="clip length (default 0.4)")
    check.add_argument("--seeds", type=int, default=3, help="lauscher seeds per clip (default 3)")
    check.add_argument("--our-seeds", type=int, default=20,
                       help="seeds per clip of the suite's chain (default 20)")
    check.add_argument("--rate", type=int, default=DEFAULT_RATE, help="audio rate")


def run_speech_command(args: argparse.Namespace) -> int:
    if args.data_command == "convert":
        from .convert import convert_collection

        speakers = args.test_speakers.split(",") if args.test_speakers else None
        files = convert_collection(args.audio, args.out, rate=args.rate, channels=args.channels,
                                   seed=args.seed, jobs=args.jobs, max_seconds=args.max_seconds,
                                   test_speakers=speakers, progress=not args.no_progress)
        for split, path in files.items():
            print(f"{split}: {path}")
        return 0
    if args.data_command == "make":
        from .digits import make_spoken_digits

        files = make_spoken_digits(args.data_dir, jobs=args.jobs, seed=args.seed,
                                   progress=not args.no_progress)
        for split, path in files.items():
            print(f"{split}: {path}")
        return 0
    if args.data_command == "cochlea-check":
        from .check import main

        return main(args)
    raise SystemExit(f"unknown data command {args.data_command!r}")
