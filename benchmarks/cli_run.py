"""Run the ``mlsel`` command as a user would, from the benchmarks: one subprocess, its
``--json`` report and its wall time, with a machine cache of its own beside the home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["MLSEL", "mlsel_json"]

MLSEL = Path(sys.executable).with_name("mlsel")


def mlsel_json(args: list[str], home: Path, *, fresh: bool) -> tuple[dict[str, Any], float]:
    """``mlsel --home HOME ARGS --json``: ``(its report, wall seconds)``.

    Args:
        args: the command and its arguments (``["run", folder, "--budget", "3m"]``).
        home: the mlsel home; ``home.parent`` gets the machine cache and ``stderr.txt``.
        fresh: empty ``home.parent`` first (a new user on a cold machine). Without it the
            home is used as it is, and it is not seeded with the bundled runs again.

    Raises:
        RuntimeError: the command failed; the message is the last line it printed.
    """
    env = {**os.environ, "MLSEL_CACHE_DIR": str(home.parent / "cache")}
    for name, value in (("MLSEL_OFFLINE", "1"), ("YOLO_OFFLINE", "1"), ("YOLO_VERBOSE", "false")):
        env.setdefault(name, value)
    if fresh:
        shutil.rmtree(home.parent, ignore_errors=True)
        home.parent.mkdir(parents=True)
    else:
        env.pop("MLSEL_NO_BUNDLED", None)  # the home is seeded already: nothing more is added
    start = time.perf_counter()
    done = subprocess.run(
        [str(MLSEL), "--home", str(home), *args, "--json"], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    (home.parent / "stderr.txt").write_text(done.stderr)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"mlsel {args[0]} exited with {done.returncode}: {last}")
    return json.loads(done.stdout), seconds
