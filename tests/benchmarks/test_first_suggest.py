"""The first-suggest benchmark's judgement of a pick and its report."""

from __future__ import annotations

from benchmarks.first_suggest import markdown, wants_imagenet


def _config(pretrained: str | None, size: int, arch: str = "efficientnet_lite0") -> dict:
    return {"arch": arch, "pretrained": pretrained, "finetune": "head", "image_size": size}


def test_a_pick_counts_only_with_imagenet_weights_at_160_px_or_more() -> None:
    assert wants_imagenet(_config("imagenet", 160))
    assert wants_imagenet(_config("imagenet", 224))
    assert not wants_imagenet(_config("imagenet", 128))
    assert not wants_imagenet(_config(None, 224, arch="resnet18"))


def test_the_report_counts_the_hits_and_names_a_failure() -> None:
    picks = [_config("imagenet", 224), _config(None, 32, arch="resnet18")]
    results = {
        "machine": "x86_64, 2 CPUs",
        "tasks": {
            "icons": {
                "seconds": 11.0,
                "scorer": "ranker",
                "picks": picks,
                "top": "efficientnet_lite0 imagenet head 224 px",
                "imagenet_at_160": True,
            },
            "emoji": {"error": "mlsel suggest exited with 2: no images"},
        },
    }
    text = markdown(results)
    assert (
        "| icons | efficientnet_lite0 imagenet head 224 px | yes | resnet18 scratch head 32 px"
        in text
    )
    assert "| emoji | failed: mlsel suggest exited with 2: no images |" in text
    assert "160 px or more: 1 of 1." in text
