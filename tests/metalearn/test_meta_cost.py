"""The cost model: a classifier's frozen backbone is paid once, a detector's every epoch."""

from __future__ import annotations

import json

import polars as pl
import pytest

from mlsel.kernel.records import Config, DatasetProfile
from mlsel.metalearn.cost import CostModel, embeds_once, hardware_key

PROFILE = DatasetProfile("d", "detect", {"n_images": 120.0, "n_classes": 2.0}, "test")


def _config(arch: str, finetune: str, epochs: int = 8) -> Config:
    return Config(
        backend="torchvision", arch=arch, finetune=finetune, epochs=epochs, image_size=320
    )


def _frame(runs: list[tuple[Config, float]], threads: str = "1", device: str = "cpu"):
    """A training-shape frame of runs on one machine: each config with its measured seconds
    an epoch."""
    rows = []
    for config, seconds in runs:
        row = {f"cfg_{k}": v for k, v in config.to_dict().items()}
        row["cfg_extra"] = json.dumps(row.get("cfg_extra") or {})
        row |= {"seconds_per_epoch": seconds, "device": device, "n_train": 120.0}
        row |= {"hw_cpu": "x86_64", "hw_threads": threads, "hw_gpu": None}
        rows.append(row)
    return pl.DataFrame(rows)


ONE_THREAD, TWO_THREADS = "cpu x86_64, 1 threads", "cpu x86_64, 2 threads"


def test_only_a_classifier_with_a_frozen_pretrained_backbone_embeds_once():
    assert embeds_once(_config("efficientnet_lite0", "head"))
    assert embeds_once(_config("efficientnet_lite0", "linear"))
    assert not embeds_once(_config("efficientnet_lite0", "partial"))
    assert not embeds_once(_config("efficientnet_lite0", "head").with_(pretrained=None))
    assert not embeds_once(_config("retinanet_efficientnet_lite0", "head"))


def test_a_frozen_detector_costs_every_epoch_and_learns_from_its_runs():
    head = _config("retinanet_efficientnet_lite0", "head")
    runs = [(head, 16.0), (head, 18.0), (head.with_(lr=0.003), 17.0)]
    model = CostModel(device="cpu", hardware=ONE_THREAD).fit(_frame(runs, threads="9"))
    short, long = model.predict(head, PROFILE), model.predict(head.with_(epochs=16), PROFILE)
    assert short.fixed_seconds == 0.0
    assert short.seconds_per_epoch == pytest.approx(17.0)  # the median of its runs
    assert long.total_seconds == pytest.approx(2 * short.total_seconds)
    assert short.basis == "3 runs on cpu"


def test_a_frozen_classifier_pays_its_embeddings_once_and_does_not_correct_the_prior():
    probe = _config("efficientnet_lite0", "head")
    model = CostModel(device="cpu").fit(_frame([(probe, 50.0)] * 3))
    assert model.n_runs_ == 0  # its epochs say nothing of the backbone's speed
    short, long = model.predict(probe, PROFILE), model.predict(probe.with_(epochs=16), PROFILE)
    assert short.fixed_seconds > 0.0
    assert short.seconds_per_epoch < 0.01
    assert long.total_seconds - short.total_seconds < 0.1
    assert model.predict(probe, PROFILE, cached=1.0).fixed_seconds < short.fixed_seconds


def test_the_cost_model_learns_this_machines_speed_and_ignores_other_devices():
    detector = _config("fasterrcnn_mobilenet_v2", "partial")
    probe = _config("mobilenet_v2", "full")
    slow = [(detector, 40.0)] * 3 + [(probe, 20.0)] * 3  # the corpus, one thread
    fast = [(probe, 10.0)] * 3  # this machine, two threads: half the time
    gpu = [(detector, 0.5)] * 9  # never corrects a CPU estimate
    frame = pl.concat([_frame(slow), _frame(fast, threads="2"), _frame(gpu, device="cuda:0")])
    assert hardware_key({"device": "cpu", "cpu": "x86_64", "torch_threads": "2"}) == TWO_THREADS
    here = CostModel(device="cpu", hardware=TWO_THREADS).fit(frame)
    corpus = CostModel(device="cpu", hardware=ONE_THREAD).fit(frame)
    elsewhere = CostModel(device="cpu", hardware="cpu arm64, 8 threads").fit(frame)
    # its own runs of an architecture
    assert here.predict(probe, PROFILE).basis == "3 runs on this machine"
    assert here.predict(probe, PROFILE).seconds_per_epoch == pytest.approx(10.0)
    # an architecture it never ran: the device kind's figure, scaled by its speed
    scaled = here.predict(detector, PROFILE)
    assert scaled.basis.endswith("scaled to this machine")
    ratio = scaled.seconds_per_epoch / corpus.predict(detector, PROFILE).seconds_per_epoch
    assert ratio == pytest.approx(10.0 / 15.0)  # its probes: 10 s, the kind's median 15 s
    # a machine the store has not seen: the device kind's runs, GPU runs left out
    assert elsewhere.predict(detector, PROFILE).seconds_per_epoch == pytest.approx(40.0)
    assert elsewhere.predict(detector, PROFILE).basis == "9 runs on cpu"
