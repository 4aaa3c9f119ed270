"""A search in its own process, driven by the fault-injection tests.

``python -m tests.reliability._search_main HOME DATA --name N [--resume] [--budget S]
[--epochs E] [--epoch-s S] [--progress FILE] [--output DIR]`` runs ``run_search`` with a
stand-in trainer that sleeps ``--epoch-s`` an epoch and appends ``<pid> <run_id> <epoch>``
to ``--progress`` after each, so a test knows where to strike. SIGTERM is turned into an
interrupt exactly as ``mlsel run`` does. The report is printed as JSON; the exit code is
130 when the search was interrupted, as the CLI's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.standin import SleepyTrainer


def main() -> int:
    from mlsel.cli.run import _sigterm_as_interrupt
    from mlsel.metalearn.search import SearchSettings, run_search
    from mlsel.metalearn.space import CandidateSpace

    parser = argparse.ArgumentParser()
    parser.add_argument("home")
    parser.add_argument("data")
    parser.add_argument("--name", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--budget", type=float, default=120)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-s", type=float, default=0.3)
    parser.add_argument("--max-trials", type=int, default=None)
    parser.add_argument("--progress", default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    settings = SearchSettings(
        budget_s=args.budget,
        gpus="cpu",
        sampler="random",
        pruner="none",
        warm_start=False,
        output=Path(args.output) if args.output else None,
        refit=False,
        space=CandidateSpace(architectures={"small_cnn": ("torchvision", "classify")}),
        fixed={"epochs": args.epochs, "image_size": 32},
        trainer=SleepyTrainer(args.epoch_s, progress=args.progress),
        seed=0,
        name=args.name,
        resume=args.resume,
        max_trials=args.max_trials,
    )
    with _sigterm_as_interrupt():
        report = run_search(args.data, settings, home=args.home)
    sys.stdout.write(json.dumps(report.to_dict(), default=str) + "\n")
    return 130 if report.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
