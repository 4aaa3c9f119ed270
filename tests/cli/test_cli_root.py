"""The root app: help without heavy imports, version, and one-line errors."""

from __future__ import annotations

import errno
import subprocess
import sys

import typer
from typer.testing import CliRunner

from mlsel.cli import app as app_module
from mlsel.cli._common import parse_duration
from mlsel.kernel.errors import ConfigError, DatasetError

runner = CliRunner()


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from mlsel.cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'ultralytics', 'lightgbm', 'optuna') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_version() -> None:
    result = runner.invoke(app_module.app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("mlsel ")


def test_unknown_command_is_a_usage_error() -> None:
    result = runner.invoke(app_module.app, ["no-such-command"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output


def _app_raising(exc: BaseException) -> typer.Typer:
    """A root app with one command that raises ``exc``, wired like the real one."""
    app = typer.Typer(cls=app_module._MlselGroup)
    app.callback()(app_module._root)

    @app.command()
    def boom() -> None:
        raise exc

    return app


def test_user_error_is_one_red_line_without_traceback() -> None:
    error = DatasetError("No images under 'x'. Point mlsel at a folder of class folders.")
    app = _app_raising(error)
    result = runner.invoke(app, ["boom"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: No images under 'x'. Point mlsel at a folder of class folders."]


def test_debug_shows_the_exception() -> None:
    app = _app_raising(ConfigError("bad"))
    result = runner.invoke(app, ["--debug", "boom"])
    assert isinstance(result.exception, ConfigError)


def test_unexpected_errors_and_full_disk_are_one_line() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/data/x")
    result = runner.invoke(_app_raising(full), ["boom"])
    assert result.exit_code == 1
    assert "the disk is full" in result.output and "Traceback" not in result.output
    result = runner.invoke(_app_raising(RuntimeError("weird")), ["boom"])
    assert "unexpected RuntimeError: weird" in result.output
    assert len([ln for ln in result.output.splitlines() if ln.strip()]) == 1


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("30m") == 1800
    assert parse_duration("1.5h") == 5400
    for bad in ("", "5 minutes", "-3m", "0s"):
        try:
            parse_duration(bad)
        except ConfigError as exc:
            assert repr(bad) in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")
