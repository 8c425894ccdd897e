"""Where one method's training step spends its time: cProfile of a few training batches on the
embedded set, the shapes of the cost sweep (hidden 256, batch 32, one thread, the 1 s window in
T steps). Not a test (no ``test_`` prefix); run it as a script::

    .venv/bin/python tests/profile_step.py --method eventprop --steps 200
    .venv/bin/python tests/profile_step.py --method bptt-spyx --steps 1000 --top 15

It warms the method up on the batches first (JIT compilation, first allocations), times
``--repeats`` passes over them, then profiles one more pass and prints the functions with the
most time of their own.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import measure, registry  # noqa: E402
from methods.api import make_hparams  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="eventprop")
    parser.add_argument("--steps", type=int, default=200, help="T: steps of the 1 s window")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()

    measure.configure_threads(1)
    measure.apply_torch_threads(1)
    import datasets

    dt_ms = 1000.0 / args.steps
    data = datasets.open_dataset("synthetic", steps=args.steps, dt_ms=dt_ms)
    cls = registry.load_method(args.method)
    hparams = make_hparams(cls.Hparams, {"steps": args.steps, "dt_ms": dt_ms,
                                         "hidden": args.hidden, "batch_size": args.batch_size})
    method = cls()
    method.setup(data.spec, hparams, 0, "cpu")
    batches = [b for b, _ in zip(data.batches("train", args.batch_size, fmt=cls.input_format),
                                 range(args.batches))]

    def one_pass() -> None:
        for batch in batches:
            method.train_step(batch)
        method.sync()

    one_pass()  # warm-up
    start = time.perf_counter()
    for _ in range(args.repeats):
        one_pass()
    per_batch = (time.perf_counter() - start) / (args.repeats * len(batches))
    print(f"{args.method}, T = {args.steps}, hidden {args.hidden}, batch {args.batch_size}, "
          f"one thread: {per_batch * 1000:.1f} ms per training batch "
          f"(mean of {args.repeats} x {len(batches)})")
    profiler = cProfile.Profile()
    profiler.enable()
    one_pass()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
