"""Read image datasets, check them, and turn them into meta-features.

``read_dataset`` finds the layout (class folders, YOLO, CSV manifest) and returns a
checked, split, fingerprinted :class:`Dataset` (``verify_images`` decodes every image
to find damaged ones, ``drop_items`` leaves them out); ``profile_dataset`` turns it into a
``DatasetProfile`` of the meta-features in :data:`FEATURES` (``profile_cached`` keeps
them in the store); ``write_sample`` writes offline sample datasets; ``data_card``
renders a Markdown card; ``list_images`` lists the image files under a folder. Decoding
and landmarkers (torch) happen only when asked for.
"""

from __future__ import annotations

from mlsel.kernel.dataset import Box, Dataset, DatasetItem
from mlsel.profilers._files import IMAGE_EXTENSIONS, list_images
from mlsel.profilers._pixels import STAT_NAMES, pixel_stats
from mlsel.profilers._verify import bad_files_message, drop_items, verify_images
from mlsel.profilers.datacard import data_card
from mlsel.profilers.features import FEATURES, GROUPS, Feature
from mlsel.profilers.fingerprint import dataset_fingerprint
from mlsel.profilers.profile import (
    PIXEL_SAMPLE_CAP,
    PROFILER_VERSION,
    profile_cached,
    profile_dataset,
)
from mlsel.profilers.readers import detect_layout, read_dataset
from mlsel.profilers.samples import SAMPLES, write_sample

__all__ = [
    "STAT_NAMES",
    "FEATURES",
    "IMAGE_EXTENSIONS",
    "GROUPS",
    "PIXEL_SAMPLE_CAP",
    "PROFILER_VERSION",
    "SAMPLES",
    "Box",
    "Dataset",
    "DatasetItem",
    "Feature",
    "bad_files_message",
    "data_card",
    "dataset_fingerprint",
    "detect_layout",
    "drop_items",
    "list_images",
    "pixel_stats",
    "profile_cached",
    "profile_dataset",
    "read_dataset",
    "verify_images",
    "write_sample",
]
