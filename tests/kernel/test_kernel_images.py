"""The one image decoder: transparency on white, the trainer's resize kept, no warnings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlsel.kernel import images
from mlsel.kernel.errors import DatasetError
from mlsel.kernel.images import decode, load_rgb, to_rgb

RED = (200, 30, 40)
BILINEAR = Image.Resampling.BILINEAR


def _photo(side: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB picture (gradients and a few discs), like a photo more than noise."""
    y, x = np.mgrid[0:side, 0:side] / side
    rng = np.random.default_rng(seed)
    planes = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 4, size=3)
        planes.append(127 + 100 * np.sin(2 * np.pi * (fx * x + fy * y) + phase))
    out = np.stack(planes, axis=-1)
    for cx, cy, r in rng.uniform(0.1, 0.9, size=(4, 3)):
        out[(x - cx) ** 2 + (y - cy) ** 2 < (r / 4) ** 2] = rng.uniform(0, 255, size=3)
    return out.clip(0, 255).astype(np.uint8)


def _old_decode(path: Path, size: int) -> np.ndarray:
    """What ``trainers/cache.decode_image`` did before the kernel decoder."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((size, size), BILINEAR), dtype=np.uint8)


def _cut_out(tmp_path: Path, mode: str) -> Path:
    """A 20x20 image, fully transparent but for an opaque red square at (5..14, 5..14)."""
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)  # transparent black
    rgba[5:15, 5:15] = (*RED, 255)
    image = Image.fromarray(rgba, "RGBA")
    path = tmp_path / f"cut-{mode}.png"
    if mode == "RGBA":
        image.save(path)
    elif mode == "LA":
        image.convert("LA").save(path)
    else:  # P with a tRNS chunk: 0 transparent, 1 opaque red, 2 (unused) half-transparent
        palette = Image.new("P", (20, 20), 0)
        palette.putpalette([0, 0, 0, *RED, 0, 0, 255] + [0] * 759)
        palette.paste(1, (5, 5, 15, 15))
        palette.save(path, transparency=bytes([0, 255, 128]))  # Pillow reads it as bytes
    return path


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_a_transparent_background_decodes_to_white(tmp_path: Path, mode: str) -> None:
    path = _cut_out(tmp_path, mode)
    with Image.open(path) as stored:
        assert stored.mode == mode
    pixels = decode(path)
    assert pixels.shape == (20, 20, 3) and pixels.dtype == np.uint8
    background = np.ones((20, 20), dtype=bool)
    background[5:15, 5:15] = False
    assert (pixels[background] == 255).all()
    inside = pixels[5:15, 5:15].reshape(-1, 3)
    if mode == "LA":  # grey: the red's luma in every channel
        grey = round(0.299 * RED[0] + 0.587 * RED[1] + 0.114 * RED[2])
        assert (np.abs(inside.astype(int) - grey) <= 1).all()
    else:
        assert (inside == RED).all()


def test_premultiplied_and_keyed_transparency_is_white_too() -> None:
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (*RED, 255))
    for image in (rgba.convert("RGBa"), rgba.convert("LA").convert("La")):
        pixels = np.asarray(to_rgb(image))
        assert (pixels[0, 0] == 255).all() and image.mode in ("RGBa", "La")
    keyed = Image.new("RGB", (4, 4), (1, 2, 3))
    keyed.info["transparency"] = (1, 2, 3)
    assert (np.asarray(to_rgb(keyed)) == 255).all()


def test_an_opaque_png_decodes_bit_for_bit_as_the_trainer_did(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(_photo(300)[:, :217]).save(path)  # not square: squashed as before
    for size in (7, 32, 224, 600):
        assert np.array_equal(decode(path, size), _old_decode(path, size))
    grey = tmp_path / "grey.png"
    Image.fromarray(_photo(90)[..., 0]).save(grey)
    assert np.array_equal(decode(grey, 64), _old_decode(grey, 64))
    opaque = tmp_path / "opaque-rgba.png"  # an alpha channel of 255 changes nothing
    Image.fromarray(_photo(90)).convert("RGBA").save(opaque)
    assert np.array_equal(decode(opaque, 64), _old_decode(opaque, 64))


def test_a_jpeg_decodes_as_the_trainer_did_and_drafts_only_when_much_larger(
    tmp_path: Path,
) -> None:
    path = tmp_path / "photo.jpg"
    Image.fromarray(_photo(1024)).save(path, quality=90)
    # 1024 < 2 * DRAFT_MARGIN * 224: decoded at full size, bit for bit as before
    assert np.array_equal(decode(path, 224), _old_decode(path, 224))
    # at 64 the decoder drafts to 256x256 (DCT scaling by 1/4), then resizes bilinear
    drafted = decode(path, 64).astype(int)
    difference = np.abs(drafted - _old_decode(path, 64).astype(int)).mean()
    assert difference < 1.0  # 0.33 of 255 on this picture
    rgb, mode = load_rgb(path, draft=256)
    assert rgb.size == (256, 256) and mode == "RGB"


def test_decoding_warns_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _cut_out(tmp_path, "P")
    big = tmp_path / "big.png"
    Image.new("RGB", (30, 20)).save(big)  # 600 pixels: over Pillow's warning threshold
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # a caller's cap: kept
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Image.open(path) as image:
            image.convert("RGB")  # Pillow's own conversion warns here
        assert caught, "the fixture no longer provokes Pillow's warning"
        Image.open(big).close()
        assert issubclass(caught[-1].category, Image.DecompressionBombWarning)
        caught.clear()
        assert decode(big, 16).shape == (16, 16, 3)
        decode(path, 16)
        decode(path.read_bytes())
        load_rgb(path)
        with Image.open(path) as image:
            to_rgb(image)
    assert caught == []


def test_threads_decoding_at_once_leave_the_warning_filters_as_they_were(
    tmp_path: Path,
) -> None:
    path = _cut_out(tmp_path, "P")
    before = list(warnings.filters)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                decode(path, 8)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and warnings.filters == before


def test_an_image_over_the_pixel_cap_is_refused_naming_file_and_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    Image.new("RGB", (50, 40)).save(path)  # 2,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow refuses nothing: mlsel does
    monkeypatch.setattr(images, "PIXEL_CAP", 1500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DatasetError) as info:
            decode(path, 8)
    message = str(info.value)
    assert str(path) in message and "0.0015 megapixels" in message and "PIXEL_CAP" in message
    assert "Cannot decode" not in message  # its own message, not the unreadable one
    monkeypatch.setattr(images, "PIXEL_CAP", 2000)
    assert decode(path, 8).shape == (8, 8, 3)


def test_pillow_refusing_first_is_reported_with_pillows_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    Image.new("RGB", (50, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # a caller's lower cap is kept
    with pytest.raises(DatasetError, match=r"huge\.png is over Pillow's cap of 0\.001 meg"):
        decode(path)


def test_the_pixel_cap_admits_a_15000_pixel_square_and_pillow_is_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert images.PIXEL_CAP == 250_000_000 >= 15_000 * 15_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1234)  # a caller's choice is kept
    images.apply_pixel_cap()
    assert Image.MAX_IMAGE_PIXELS == 1234
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1024**3 // 4 // 3)  # Pillow's default
    images.apply_pixel_cap()
    assert Image.MAX_IMAGE_PIXELS == images.PIXEL_CAP  # warns above it: over the cap only
    monkeypatch.setattr(images, "PIXEL_CAP", 10)
    images.apply_pixel_cap()  # no longer Pillow's default: left alone
    assert Image.MAX_IMAGE_PIXELS == 250_000_000


def test_an_image_pillow_refuses_under_mlsels_cap_names_mlsels_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    Image.new("RGB", (50, 40)).save(path)  # 2,000 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 900)  # Pillow refuses above 1,800
    monkeypatch.setattr(images, "PIXEL_CAP", 900)  # as apply_pixel_cap leaves them
    with pytest.raises(DatasetError, match=r"huge\.png is over mlsel's cap of 0\.0009 meg"):
        decode(path, 8)


def test_a_corrupt_file_raises_a_dataset_error_naming_it(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.png"
    Image.fromarray(_photo(64)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    for path in (truncated, garbage, tmp_path / "missing.png"):
        with pytest.raises(DatasetError, match=f"Cannot decode image {path}: .*Remove or"):
            decode(path, 16)
    with pytest.raises(DatasetError, match="Cannot decode image <image bytes>"):
        decode(b"nope", 16)


def test_an_import_error_from_a_patched_open_is_an_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "odd.heic"
    path.write_bytes(b"\x00" * 64)

    def patched_open(*args: object, **kwargs: object) -> Image.Image:
        raise ModuleNotFoundError("No module named 'pi_heif'")  # as ultralytics' patch does

    monkeypatch.setattr(Image, "open", patched_open)
    with pytest.raises(DatasetError, match="odd.heic: Pillow cannot identify its format"):
        decode(path)


def test_pil_images_arrays_and_bytes_decode_as_the_file_does(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(_photo(120)).save(path)
    expected = decode(path, 48)
    with Image.open(path) as image:
        assert np.array_equal(decode(image, 48), expected)
        assert image.mode == "RGB" and image.size == (120, 120)  # the caller's is kept
    assert np.array_equal(decode(np.asarray(Image.open(path)), 48), expected)
    assert np.array_equal(decode(path.read_bytes(), 48), expected)
    assert decode(_photo(30)).shape == (30, 30, 3)  # no size: full size
    with pytest.raises(DatasetError, match=r"shape \(3, 3, 3\) and dtype float64"):
        decode(np.zeros((3, 3, 3)), 8)


def test_sixteen_bit_and_cmyk_images_convert_sensibly() -> None:
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    sixteen = Image.fromarray(ramp)
    assert sixteen.mode == "I;16"
    pixels = np.asarray(to_rgb(sixteen))
    assert pixels[..., 0].max() == 255 and pixels[0, 0, 0] == 0  # scaled, not clipped
    assert (pixels[..., 0] == pixels[..., 2]).all()
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red ink-free
    assert tuple(np.asarray(to_rgb(cmyk))[0, 0]) == (255, 0, 0)


def test_importing_the_module_imports_neither_pil_nor_numpy() -> None:
    code = (
        "import sys, mlsel.kernel.images\n"
        "print(sorted(m for m in ('PIL', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- large images: reduced once, the reduced copy cached (sizes scaled down for speed) ---


@pytest.fixture
def large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Large images made small: over 10,000 pixels is large and reduced copies keep 32 px a
    side; a private machine cache and an empty in-process cache. Returns the cache folder."""
    monkeypatch.setattr(images, "LARGE_PIXELS", 10_000)
    monkeypatch.setattr(images, "REDUCED_SIDE", 32)
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(images, "_memory", OrderedDict())
    return tmp_path / "cache" / "decoded"


def _full_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The reduction factor of every full-size decode of a large image, as they happen."""
    factors: list[int] = []
    real = images._reduce_to_rgb

    def counted(image: Image.Image, factor: int) -> Image.Image:
        factors.append(factor)
        return real(image, factor)

    monkeypatch.setattr(images, "_reduce_to_rgb", counted)
    return factors


def test_a_large_png_is_reduced_then_resized_close_to_a_full_decode(
    tmp_path: Path, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(_photo(320)).save(path)  # 102,400 pixels: large here
    factors = _full_decodes(monkeypatch)
    pixels = decode(path, 8)  # both sides kept >= max(4 * 8, 32): reduced by 10 to 32x32
    assert factors == [10] and pixels.shape == (8, 8, 3)
    assert np.abs(pixels.astype(int) - _old_decode(path, 8).astype(int)).mean() < 2.0
    assert [p.suffix for p in large.iterdir()] == [".png"]  # one copy, no temporary left
    with Image.open(next(large.iterdir())) as stored:
        assert stored.size == (32, 32) and stored.mode == "RGB"
    rgb, mode = load_rgb(path, draft=20)
    assert rgb.size == (32, 32) and mode == "RGB" and factors == [10]
    assert load_rgb(path)[0].size == (320, 320)  # no draft: full size, never cached


def test_the_reduced_copy_is_reused_until_the_file_changes(
    tmp_path: Path, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(_photo(320)).save(path)
    factors = _full_decodes(monkeypatch)
    first = decode(path, 8)
    rgb, _ = load_rgb(path, draft=16)
    rgb.paste((0, 0, 0), (0, 0, 32, 32))  # the caller's copy: the cache's is untouched
    assert np.array_equal(decode(path, 8), first) and decode(path, 4).shape == (4, 4, 3)
    assert factors == [10]  # from this process's cache
    images._memory.clear()
    assert np.array_equal(decode(path, 8), first) and factors == [10]  # from disk
    assert decode(path, 16).shape == (16, 16, 3)  # 4 * 16 > 32: a larger copy is made
    assert factors == [10, 5]
    decode(path, 8)  # the larger copy serves smaller sizes
    assert factors == [10, 5]
    Image.fromarray(_photo(320, seed=1)).save(path)  # new content, size and mtime
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert not np.array_equal(decode(path, 8), first) and factors == [10, 5, 10]


def test_a_cache_that_cannot_be_used_never_fails_a_decode(
    tmp_path: Path, large: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(_photo(320)).save(path)
    expected = decode(path, 8)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(blocked))
    monkeypatch.setattr(images, "_memory", OrderedDict())
    factors = _full_decodes(monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="mlsel.kernel.images"):
        assert np.array_equal(decode(path, 8), expected)
    assert factors == [10] and "not cached on disk" in caplog.text
    assert np.array_equal(decode(path, 8), expected) and factors == [10]  # in memory still
    monkeypatch.setenv("MLSEL_CACHE_DIR", str(tmp_path / "cache"))  # a damaged copy on disk
    monkeypatch.setattr(images, "_memory", OrderedDict())
    stored = next(large.iterdir())
    stored.write_bytes(b"not a png")
    assert np.array_equal(decode(path, 8), expected) and factors == [10, 10]
    with Image.open(stored) as rewritten:  # replaced by a good one
        assert rewritten.size == (32, 32)


def test_large_bytes_and_jpegs_are_not_cached(
    tmp_path: Path, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = tmp_path / "photo.png"
    Image.fromarray(_photo(320)).save(png)
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(_photo(320)).save(jpeg, quality=90)
    factors = _full_decodes(monkeypatch)
    data = png.read_bytes()
    assert np.array_equal(decode(data, 8), decode(data, 8)) and factors == [10, 10]
    decode(jpeg, 8)  # drafted by the JPEG decoder instead
    assert factors == [10, 10] and not large.exists()


def test_a_large_transparent_png_is_white_behind_and_converted_in_bands(
    tmp_path: Path, large: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rgba = np.zeros((200, 300, 4), dtype=np.uint8)  # transparent black
    rgba[80:120, 130:170] = (*RED, 255)
    path = tmp_path / "cut.png"
    Image.fromarray(rgba, "RGBA").save(path)
    monkeypatch.setattr(images, "_BAND_PIXELS", 2_000)  # bands of 6 rows
    rgb, mode = load_rgb(path, draft=30)  # 200 // 32: reduced by 6, to 50x34
    assert mode == "RGBA" and rgb.size == (50, 34)
    pixels = np.asarray(rgb)
    assert (pixels[:10] == 255).all() and (pixels[:, :15] == 255).all()
    assert (pixels[15, 23] == RED).all()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "I;16", "CMYK"])
def test_bands_convert_exactly_as_the_whole_image(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    rgba = np.random.default_rng(3).integers(0, 256, (37, 29, 4), dtype=np.uint8)
    rgba[:5, :, 3] = 0  # a transparent strip
    image = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        image = image.convert("RGB").convert("P")
        image.info["transparency"] = 0
    elif mode == "I;16":
        image = Image.fromarray(rgba[..., 0].astype(np.uint16) * 200)
    elif mode != "RGBA":
        image = image.convert(mode)
    monkeypatch.setattr(images, "_BAND_PIXELS", 100)  # bands of 3 rows at factor 3
    for factor in (1, 3, 4):
        whole = np.asarray(to_rgb(image).reduce(factor))
        assert np.array_equal(np.asarray(images._reduce_to_rgb(image, factor)), whole)


def test_bytes_that_are_no_image_are_named_without_pillow_s_file_object() -> None:
    with pytest.raises(DatasetError) as info:
        decode(b"not an image at all")
    message = str(info.value)
    assert message.startswith("Cannot decode image <image bytes>: Pillow cannot identify")
    assert "BytesIO" not in message
