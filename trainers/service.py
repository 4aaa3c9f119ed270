"""The REST service of an exported model: the files that make a folder servable.

An exported folder (``model.onnx``, ``classes.json``, ``metadata.json``, ``predict.py``,
...) becomes a service with :func:`write_service`, which adds, from the package's
``service_template/``::

    app.py                    FastAPI + ONNX Runtime, serving predict.Model (no mlsel)
    requirements-service.txt  fastapi, uvicorn, python-multipart (on top of requirements.txt)
    Dockerfile                python slim; pip install both files; uvicorn app:app
    test_service.py           the service's tests (FastAPI's TestClient), run in the folder
    SERVICE.md                the commands: run, call, test, build the image

``requirements.txt`` stays what ``predict.py`` imports and nothing more; the service's
packages are a separate file, the same as the ``mlsel[serve]`` extra.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from mlsel.kernel.errors import ConfigError

__all__ = [
    "SERVICE_FILES",
    "SERVICE_PACKAGES",
    "missing_service_packages",
    "require_service",
    "write_service",
]

SERVICE_FILES: tuple[str, ...] = (
    "app.py",
    "prediction_log.py",
    "requirements-service.txt",
    "Dockerfile",
    "test_service.py",
    "SERVICE.md",
)
# The distribution name of each package the service needs, with its import name.
SERVICE_PACKAGES: dict[str, str] = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "python-multipart": "python_multipart",
}


def _template(name: str) -> bytes:
    return resources.files("mlsel.trainers").joinpath("service_template", name).read_bytes()


def write_service(folder: Path) -> list[Path]:
    """Write the service's files into the exported ``folder`` (replacing older copies).

    Returns:
        The paths written, in :data:`SERVICE_FILES` order.

    Raises:
        ConfigError: ``folder`` is not an exported model (no ``model.onnx`` or
            ``predict.py``).
    """
    folder = Path(folder)
    missing = [name for name in ("model.onnx", "predict.py") if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"{folder} is not an exported model: {', '.join(missing)} missing. Export one "
            "first with `mlsel export MODEL DIR`."
        )
    written = []
    for name in SERVICE_FILES:
        target = folder / name
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(_template(name))
        os.replace(tmp, target)  # a kill never leaves half an app.py
        written.append(target)
    return written


def missing_service_packages() -> list[str]:
    """The service's packages that are not installed (empty when it can run)."""
    from importlib.util import find_spec

    return [dist for dist, module in SERVICE_PACKAGES.items() if find_spec(module) is None]


def require_service() -> None:
    """Raise unless the ``serve`` extra is installed.

    Raises:
        ConfigError: naming the missing packages and ``pip install 'mlsel[serve]'``.
    """
    missing = missing_service_packages()
    if missing:
        raise ConfigError(
            f"Serving a model needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install the extra with "
            "`pip install 'mlsel[serve]'`."
        )
