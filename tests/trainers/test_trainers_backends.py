"""Ultralytics classification and detection, the offline transfer signal, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlsel.experiment_store.store import Store
from mlsel.kernel.records import Config
from mlsel.profilers import read_dataset, write_sample
from mlsel.trainers import load_model, train


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(
        "digits", tmp_path_factory.mktemp("data") / "digits", classes=4, per_class=20
    )


@pytest.mark.slow
def test_yolo11n_cls_trains_one_epoch_and_logs(digits_dir: Path) -> None:
    dataset = read_dataset(digits_dir)
    config = Config(
        backend="ultralytics",
        arch="yolo11n-cls",
        pretrained=None,
        finetune="full",
        epochs=1,
        image_size=32,
        lr=1e-3,
        batch_size=16,
    )
    store = Store.open()
    run_id, result = train(dataset, config, store=store, device="cpu")
    assert store.get_run(run_id).status == "completed"
    assert len(result.curve) == 1 and len(store.epochs(run_id)) == 1
    assert 0.0 <= result.score <= 1.0 and "accuracy" in result.metrics
    assert len(load_model(run_id).predict([dataset.split("val")[0].path])) == 1


@pytest.mark.slow
def test_yolo11n_detection_trains_one_epoch_with_map_score(tmp_path: Path) -> None:
    root = write_sample("shapes-detect", tmp_path / "det", classes=2, per_class=6, size=64)
    dataset = read_dataset(root)
    assert dataset.task == "detect"
    config = Config(
        backend="ultralytics",
        arch="yolo11n",
        pretrained=None,
        finetune="full",
        epochs=1,
        image_size=64,
        lr=1e-3,
        batch_size=4,
        augment="none",
    )
    run_id, result = train(dataset, config, device="cpu")
    assert Store.open().get_run(run_id).status == "completed"
    assert result.score is not None and 0.0 <= result.score <= 1.0
    # scored by the COCO evaluator every backend shares; Ultralytics' own figures kept apart
    assert result.score == pytest.approx(result.metrics["mAP50-95"])
    assert result.metrics["map"] == result.score and "ultralytics/mAP50-95" in result.metrics
    val = dataset.split("val")
    assert result.metrics["n_images"] == result.metrics["n_val"] == len(val)
    assert result.metrics["n_boxes"] == sum(len(item.boxes) for item in val)


@pytest.mark.slow
def test_lite0_head_only_beats_lite0_from_scratch(tmp_path: Path) -> None:
    # Real signal: ImageNet features separate real digits after a few head-only epochs,
    # while the same network from random weights does not, in the same epochs.
    root = write_sample("digits", tmp_path / "digits10", per_class=24, seed=1)
    dataset = read_dataset(root)
    base = Config(
        backend="torchvision",
        arch="efficientnet_lite0",
        epochs=4,
        image_size=48,
        batch_size=32,
        augment="none",
    )
    _, pre = train(dataset, base.with_(finetune="head", lr=1e-2), device="cpu")
    _, scratch = train(dataset, base.with_(pretrained=None, finetune="full", lr=1e-3), device="cpu")
    assert pre.score > scratch.score + 0.15, (pre.score, scratch.score)
    assert pre.score > 0.5


def test_cli_train_prints_json_and_logs(digits_dir: Path, mlsel_home: Path) -> None:
    from mlsel.cli.app import app

    result = CliRunner().invoke(
        app,
        [
            "train",
            str(digits_dir),
            "--arch",
            "small_cnn",
            "--no-pretrained",
            "--epochs",
            "1",
            "--image-size",
            "16",
            "--lr",
            "0.003",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed" and len(data["curve"]) == 1
    assert Path(data["artifact_dir"]) == mlsel_home / "runs" / data["run_id"]
    assert Store.open().get_run(data["run_id"]).config.arch == "small_cnn"


def test_cli_train_bad_option_is_one_red_line(digits_dir: Path) -> None:
    from mlsel.cli.app import app

    result = CliRunner().invoke(
        app,
        ["train", str(digits_dir), "--arch", "small_cnn", "--no-pretrained", "--augment", "wild"],
    )
    assert result.exit_code == 2
    assert "'augment' parameter of train" in result.output and "Traceback" not in result.output
