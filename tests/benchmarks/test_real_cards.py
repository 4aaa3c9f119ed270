"""The second edition's data cards: one per collection, read from pool manifests, never
built; the first edition's cards are left alone."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from benchmarks.bundle.pools import CAP, MIN_IMAGES, POOL_VERSION
from benchmarks.bundle.real_cards import _best_configs, _store_lines, write_real_cards
from benchmarks.bundle.sources._base import Candidate, Source


def _nothing() -> dict[str, list[Candidate]]:
    raise AssertionError("a card must not list or build a source")


def _source(name: str, kind: str = "icons", **extra: object) -> Source:
    return Source(
        name,
        kind,
        f"{name} pictures for a test.",
        "CC-BY-SA-4.0 (test)",
        _nothing,
        packages=("fake-icon-theme",),
        lineage=f"{name}: its own artwork.",
        notes=("One size only.",),
        **extra,  # type: ignore[arg-type]
    )


def _pool(root: Path, name: str, sizes: dict[str, int], dropped: dict[str, int]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    settings = {"version": POOL_VERSION, "cap": CAP, "min_images": MIN_IMAGES, "per_group": 1}
    classes = {c: [f"{c}{i:03d}.png" for i in range(n)] for c, n in sizes.items()}
    manifest = {"settings": settings, "classes": classes, "dropped": dropped}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_a_card_lists_kept_and_dropped_classes_packages_licence_and_tasks(tmp_path) -> None:
    pools = tmp_path / "pools"
    _pool(pools, "fakeicons", {"apps": 120, "devices": 45, "places": 33}, {"emotes": 7})
    sources = [_source("fakeicons"), _source("npmicons", npm=("@fake/icons@1.2.3",))]
    written = write_real_cards(pools, None, tmp_path / "cards", sources=sources, same_source={})
    card = (tmp_path / "cards" / "sources" / "fakeicons.md").read_text()
    assert "| apps | 120 | " in card and "| places | 33 | " in card
    assert "| emotes | 7 |" in card and "pool not built yet" not in card
    assert "sudo apt-get install fake-icon-theme" in card and "make corpus-sources" in card
    assert "CC-BY-SA-4.0 (test)" in card and "its own artwork" in card
    # 3 classes with room for 33 - 15 = 18 a class: every family but the 500-a-class subset
    assert "fakeicons-subset-c3-n10" in card and "fakeicons-hue-c3-n18-degrees120" in card
    assert "probe + fine-tuning" in card
    missing = (tmp_path / "cards" / "sources" / "npmicons.md").read_text()
    assert "pool not built yet: run `python -m benchmarks.bundle.harness --kind real" in missing
    assert "npm pack @fake/icons@1.2.3" in missing and "| apps |" not in missing
    family = (tmp_path / "cards" / "derivations" / "real-families.md").read_text()
    assert "| fakeicons | fakeicons | icons | built | 3 |" in family
    assert "| npmicons | npmicons | icons | not built |" in family
    assert len(written) == 3


def test_views_of_one_collection_share_a_card_and_first_edition_cards_stay(tmp_path) -> None:
    pools = tmp_path / "pools"
    _pool(pools, "fakemoji", {"faces": 60, "food": 50}, {})
    _pool(pools, "fakemoji-fine", {"smiling": 30, "fruit": 25, "tools": 21}, {"flags": 3})
    _pool(pools, "digits", {"0": 150, "1": 150}, {})
    sources = [
        _source("digits", kind="digits"),
        _source("fakemoji", kind="emoji"),
        _source("fakemoji-fine", kind="emoji"),
    ]
    cards = tmp_path / "cards"
    (cards / "sources").mkdir(parents=True)
    (cards / "sources" / "digits.md").write_text("first edition")
    write_real_cards(
        pools,
        tmp_path / "no-home",
        cards,
        sources=sources,
        same_source={"fakemoji-fine": "fakemoji"},
    )
    assert sorted(p.name for p in (cards / "sources").iterdir()) == ["digits.md", "fakemoji.md"]
    assert (cards / "sources" / "digits.md").read_text() == "first edition"
    card = (cards / "sources" / "fakemoji.md").read_text()
    assert "## fakemoji\n" in card and "## fakemoji-fine\n" in card
    assert "| faces | 60 |" in card and "| flags | 3 |" in card and "none." in card
    assert "No corpus store (none at" in card
    family = (cards / "derivations" / "real-families.md").read_text()
    assert "| fakemoji-fine | fakemoji | emoji | built | 3 |" in family
    assert "| digits | digits | digits | built | 2 | 8 |" in family  # grey: no grey/hue


def test_a_pool_with_other_settings_is_not_read(tmp_path) -> None:
    pools = tmp_path / "pools"
    _pool(pools, "fakeicons", {"apps": 60, "devices": 60}, {})
    manifest = pools / "fakeicons" / "manifest.json"
    stored = json.loads(manifest.read_text())
    stored["settings"]["cap"] = 10
    manifest.write_text(json.dumps(stored))
    write_real_cards(pools, None, tmp_path / "cards", sources=[_source("fakeicons")])
    card = (tmp_path / "cards" / "sources" / "fakeicons.md").read_text()
    assert "other settings than the harness's" in card and "| apps |" not in card


def test_best_configs_names_the_top_completed_run_of_each_task() -> None:
    runs = pl.DataFrame(
        {
            "dataset_name": ["t1", "t1", "t1", "t2"],
            "status": ["completed", "completed", "failed", "completed"],
            "score": [0.5, 0.8, 0.99, 0.4],
            "cfg_arch": ["mobilenet_v2", "efficientnet_lite0", "resnet18", "small_cnn"],
            "cfg_finetune": ["linear", "head", "full", "full"],
            "cfg_image_size": [160, 224, 32, 32],
            "cfg_lr": [1e-3, 1e-3, 1e-2, 1e-3],
            "cfg_augment": ["none", "light", "none", "strong"],
            "cfg_epochs": [1, 30, 8, 15],
        }
    )
    lines = _best_configs(["t1", "t2"], runs)
    assert "| t1 | 0.800 | efficientnet_lite0 | head | 224 | 0.001 | light | 30 |" in lines
    assert any(line.startswith("| t2 | 0.400 | small_cnn") for line in lines)
    assert _best_configs(["t3"], runs) == []


def test_the_store_section_summarises_runs_on_the_cards_tasks(tmp_path) -> None:
    runs = pl.DataFrame(
        {
            "dataset_name": ["t1", "t1", "other"],
            "status": ["completed", "completed", "completed"],
            "score": [0.5, 0.8, 0.9],
            "cfg_arch": ["mobilenet_v2", "efficientnet_lite0", "resnet18"],
            "cfg_finetune": ["linear", "head", "full"],
            "cfg_image_size": [160, 224, 32],
            "cfg_lr": [1e-3, 1e-3, 1e-2],
            "cfg_augment": ["none", "light", "none"],
            "cfg_epochs": [1, 30, 8],
        }
    )
    features = {"t1": {"n_train": 40.0, "n_classes": 2.0}, "other": {"n_train": 9.0}}
    lines = _store_lines(["t1"], tmp_path, (features, runs))
    assert "| n_train | 40 | 40 | 40 |" in lines
    assert any("2 completed runs" in line and "efficientnet_lite0 (1)" in line for line in lines)
    assert not any("resnet18" in line for line in lines)
    assert _store_lines(["t9"], tmp_path, (features, runs))[0].startswith("No runs on these")
