"""`mlsel store set`: list and change the store's settings, reject bad ones."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mlsel.cli.app import app
from mlsel.experiment_store import Store

runner = CliRunner()


def test_settings_list_set_and_reject(mlsel_home) -> None:
    result = runner.invoke(app, ["store", "set", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {"refit_every": 20, "bundled": True}
    result = runner.invoke(app, ["store", "set", "refit_every", "50"])
    assert result.exit_code == 0 and "refit_every = 50" in result.output
    result = runner.invoke(app, ["store", "set", "bundled", "false"])
    assert result.exit_code == 0
    store = Store.open(mlsel_home)
    assert store.get_setting("refit_every") == 50 and store.get_setting("bundled") is False
    for args, message in (
        (["refit_every", "soon"], "whole number"),
        (["bundled", "maybe"], "true or false"),
        (["colour", "red"], "Unknown setting"),
        (["refit_every"], "Give a value"),
    ):
        result = runner.invoke(app, ["store", "set", *args])
        assert result.exit_code == 2 and message in result.output, result.output
