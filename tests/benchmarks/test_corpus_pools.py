"""The second edition's pools and tasks: deduplicated, capped, deterministic, recorded."""

from __future__ import annotations

import io
import json
from functools import partial

import numpy as np
from PIL import Image

from benchmarks.bundle.derive import VAL_PER_CLASS, RealTask, build_real_task, plan_tasks
from benchmarks.bundle.pools import build_pool
from benchmarks.bundle.sources._base import Candidate, Source, png_bytes


def _png(value: int, size: int = 24, mode: str = "RGBA") -> bytes:
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 255, (size, size, 4 if mode == "RGBA" else 3), dtype=np.uint8)
    if mode == "RGBA":
        pixels[..., 3] = 255
        pixels[:4, :4, 3] = 0  # a transparent corner
    out = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(out, format="PNG")
    return out.getvalue()


def _source(per_class: dict[str, int], renders: list[str] | None = None) -> Source:
    def collect() -> dict[str, list[Candidate]]:
        out = {}
        for c, (cls, n) in enumerate(per_class.items()):
            items = []
            for i in range(n):
                value = 1000 * c + i

                def render(value: int = value, name: str = f"{cls}-{i}") -> bytes:
                    if renders is not None:
                        renders.append(name)
                    return _png(value)

                items.append(Candidate(f"{cls}-{i}", f"{cls}-{i}", render))
            # a second frame of one object, and an image whose bytes repeat another's
            items.append(Candidate(f"{cls}-0-frame2", f"{cls}-0", partial(_png, 1000 * c + 7)))
            items.append(Candidate(f"{cls}-copy", f"{cls}-copy", partial(_png, 1000 * c)))
            out[cls] = items
        return out

    return Source("fake", "icons", "fake icons", "none", collect)


def test_a_pool_keeps_one_image_an_object_no_copies_and_drops_small_classes(tmp_path) -> None:
    pool = build_pool(_source({"big": 60, "mid": 30, "tiny": 10}), tmp_path, cap=50)
    assert pool.sizes() == {"big": 50, "mid": 30}  # capped; tiny (10 + its copy) dropped
    assert pool.dropped == {"tiny": 10}
    digests = [p.name for paths in pool.classes.values() for p in paths]
    assert len(set(digests)) == len(digests)
    manifest = json.loads((tmp_path / "fake" / "manifest.json").read_text())
    assert manifest["classes"]["mid"] == [p.name for p in pool.classes["mid"]]
    renders: list[str] = []
    again = build_pool(_source({"big": 60, "mid": 30, "tiny": 10}, renders), tmp_path, cap=50)
    assert again.classes == pool.classes and renders == []  # read back, nothing rendered


def test_tasks_follow_the_pool_and_validate_on_the_same_balanced_split(tmp_path) -> None:
    pool = build_pool(_source({"a": 80, "b": 60, "c": 40}), tmp_path / "pool")
    tasks = plan_tasks(pool)
    assert len({t.name for t in tasks}) == len(tasks) >= 9
    largest = next(t for t in tasks if t.family == "subset" and t.classes == 3 and t.per_class > 10)
    assert largest.per_class == 40 - VAL_PER_CLASS  # as many as the smallest class allows
    vals = []
    for spec in (largest, next(t for t in tasks if t.family == "grey")):
        folder = build_real_task(spec, pool, tmp_path / "tasks")
        record = json.loads((folder / "derivation.json").read_text())
        assert record["train_images"] == sum(record["train_counts"].values())
        for cls in ("a", "b", "c"):
            val = sorted(p.name for p in (folder / "val" / cls).iterdir())
            train = {p.name for p in (folder / "train" / cls).iterdir()}
            assert len(val) == VAL_PER_CLASS and not train & set(val)
            vals.append(val)
    assert vals[:3] == vals[3:]  # the same validation images in every task of the source
    grey = Image.open(next((tmp_path / "tasks").glob("*grey*/train/a/*.png")))
    assert grey.mode == "L"
    corner = Image.open(next((tmp_path / "tasks").glob("*subset-c3*/train/a/*.png")))
    assert corner.mode == "RGB" and corner.getpixel((0, 0)) == (255, 255, 255)  # on white


def test_a_task_is_the_same_when_built_twice(tmp_path) -> None:
    pool = build_pool(_source({"a": 40, "b": 40}), tmp_path / "pool")
    spec = RealTask("fake", "noise", 2, 10, {"sigma": 40}, seed=3)
    first = build_real_task(spec, pool, tmp_path / "one")
    second = build_real_task(spec, pool, tmp_path / "two")
    for path in sorted(first.rglob("*.png")):
        twin = second / path.relative_to(first)
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(twin)))


def test_png_bytes_shrinks_large_images_and_drops_empty_ones() -> None:
    big = Image.new("RGB", (600, 300), (10, 20, 30))
    shrunk = Image.open(io.BytesIO(png_bytes(big)))
    assert shrunk.size == (256, 128) and shrunk.mode == "RGB"
    assert png_bytes(Image.new("RGBA", (32, 32), (0, 0, 0, 0))) == b""
    palette = Image.new("P", (20, 20))
    assert Image.open(io.BytesIO(png_bytes(palette))).mode == "RGBA"


def test_grey_sources_get_no_colour_tasks_and_fine_tuning_sees_every_source(tmp_path) -> None:
    from benchmarks.bundle.plan import tuned_subset

    pool = build_pool(_source({"a": 80, "b": 60, "c": 40}), tmp_path / "pool")
    colour, grey = plan_tasks(pool), plan_tasks(pool, colour=False)
    assert {t.family for t in colour} - {t.family for t in grey} == {"grey", "hue"}
    other = [RealTask("other", t.family, t.classes, t.per_class, t.params) for t in colour]
    chosen = tuned_subset(colour + other)
    assert len(chosen) == 4
    for source in ("fake", "other"):
        mine = [t for t in colour + other if t.source == source and t.name in chosen]
        assert {t.family for t in mine} in ({"subset", "blur"}, {"subset", "hue"})
        assert next(t for t in mine if t.family == "subset").per_class == 10
