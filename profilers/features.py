"""The registry of meta-features: every name a profile may hold, with its meaning.

The CLI groups its tables by :attr:`Feature.group`, and the recommender quotes
:attr:`Feature.description` when it explains a suggestion. A feature that was not
measured (a detection feature of a classification dataset, a landmarker turned off)
is NaN in the profile.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FEATURES", "GROUPS", "Feature", "describe"]

GROUPS: tuple[str, ...] = ("size", "balance", "quality", "image", "detection", "landmarkers")


@dataclass(frozen=True)
class Feature:
    """One meta-feature: its name, group, a sentence a user can read, and its unit."""

    name: str
    group: str
    description: str
    unit: str = ""


_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("n_images", "size", "readable images in the dataset", "images"),
    ("n_classes", "size", "number of classes", "classes"),
    ("n_train", "size", "images in the training split", "images"),
    ("n_val", "size", "images in the validation split", "images"),
    ("n_test", "size", "images in the test split", "images"),
    ("images_per_class_min", "size", "training images in the smallest class", "images"),
    ("images_per_class_median", "size", "training images in the median class", "images"),
    ("images_per_class_max", "size", "training images in the largest class", "images"),
    ("images_per_class_mean", "size", "average training images per class", "images"),
    ("imbalance_ratio", "balance", "largest class size divided by smallest", "x"),
    ("class_entropy", "balance", "evenness of the class sizes (1 = perfectly balanced)", ""),
    ("small_class_share", "balance", "share of classes with fewer than 50 images", ""),
    ("corrupt_share", "quality", "share of image files that could not be read", ""),
    ("duplicate_share", "quality", "share of images that exactly duplicate another", ""),
    ("leakage_share", "quality", "share of images duplicated across splits", ""),
    ("width_median", "image", "median image width", "px"),
    ("height_median", "image", "median image height", "px"),
    ("width_min", "image", "smallest image width", "px"),
    ("width_max", "image", "largest image width", "px"),
    ("height_min", "image", "smallest image height", "px"),
    ("height_max", "image", "largest image height", "px"),
    ("megapixels_median", "image", "median image size in megapixels", "MP"),
    ("aspect_mean", "image", "average aspect ratio (width / height)", ""),
    ("aspect_std", "image", "spread of the aspect ratios", ""),
    ("size_variety", "image", "share of images not at the most common size", ""),
    ("file_kb_mean", "image", "average file size", "KB"),
    ("format_jpeg_share", "image", "share of JPEG files", ""),
    ("format_png_share", "image", "share of PNG files", ""),
    ("format_other_share", "image", "share of other formats (BMP, TIFF, WebP...)", ""),
    ("pixel_sample", "image", "images decoded for the pixel statistics below", "images"),
    ("grayscale_share", "image", "share of images without colour", ""),
    ("brightness_mean", "image", "average brightness (0 black, 1 white)", ""),
    ("brightness_std", "image", "how much brightness varies between images", ""),
    ("contrast_mean", "image", "average contrast (std of brightness within an image)", ""),
    ("saturation_mean", "image", "average colour saturation (0 grey, 1 vivid)", ""),
    ("colourfulness_mean", "image", "average colourfulness (Hasler-Suesstrunk; >50 vivid)", ""),
    ("sharpness_median", "image", "median sharpness (Laplacian variance, at most 128 px)", ""),
    ("edge_density_mean", "image", "average share of edge pixels (at most 128 px)", ""),
    ("pixel_entropy_mean", "image", "average entropy of the brightness histogram", "bits"),
    ("boxes_per_image_mean", "detection", "average boxes per image", "boxes"),
    ("boxes_per_image_max", "detection", "most boxes in one image", "boxes"),
    ("empty_image_share", "detection", "share of images without any box", ""),
    ("box_small_share", "detection", "share of small boxes (under 32x32 px)", ""),
    ("box_medium_share", "detection", "share of medium boxes (32x32 to 96x96 px)", ""),
    ("box_large_share", "detection", "share of large boxes (over 96x96 px)", ""),
    ("box_area_mean", "detection", "average box area as a share of its image", ""),
    (
        "box_side_p10",
        "detection",
        "10th percentile of the box side relative to the image (sqrt of its area share)",
        "",
    ),
    (
        "box_side_median",
        "detection",
        "median box side relative to the image (sqrt of its area share)",
        "",
    ),
    (
        "box_side_p90",
        "detection",
        "90th percentile of the box side relative to the image (sqrt of its area share)",
        "",
    ),
    ("box_aspect_mean", "detection", "average box aspect ratio (width / height)", ""),
    ("box_aspect_std", "detection", "spread of the box aspect ratios", ""),
    ("box_overlap_mean", "detection", "average IoU of each box with its nearest neighbour", ""),
    ("crowded_box_share", "detection", "share of boxes overlapping another (IoU > 0.3)", ""),
    (
        "edge_box_share",
        "detection",
        "share of boxes with a side within 2% of the image border (cut-off objects)",
        "",
    ),
    (
        "classes_per_image_mean",
        "detection",
        "average number of distinct classes in an image with boxes",
        "classes",
    ),
    (
        "multi_class_image_share",
        "detection",
        "share of images with boxes that hold more than one class",
        "",
    ),
    ("boxes_per_class_min", "detection", "boxes of the rarest class", "boxes"),
    ("boxes_per_class_median", "detection", "boxes of the median class", "boxes"),
    ("boxes_per_class_max", "detection", "boxes of the most common class", "boxes"),
    ("lm_images", "landmarkers", "images the simple-learner probes looked at", "images"),
    ("lm_majority_acc", "landmarkers", "accuracy of always guessing the largest class", ""),
    ("lm_1nn_acc", "landmarkers", "1-nearest-neighbour accuracy on 16x16 grey pixels", ""),
    ("lm_lda_acc", "landmarkers", "linear discriminant accuracy on 16x16 grey pixels", ""),
    ("lm_stump_acc", "landmarkers", "one-split decision stump accuracy on pixels", ""),
    ("lm_nb_acc", "landmarkers", "Gaussian naive Bayes accuracy on pixels", ""),
    ("lm_deep_images", "landmarkers", "images the ImageNet probes looked at", "images"),
    (
        "lm_mobilenet_probe_acc",
        "landmarkers",
        "linear probe accuracy on ImageNet MobileNetV2 features",
        "",
    ),
    (
        "imagenet_confidence",
        "landmarkers",
        "average top-1 confidence of an ImageNet classifier (high = ImageNet-like)",
        "",
    ),
    (
        "imagenet_entropy",
        "landmarkers",
        "average normalised entropy of ImageNet predictions (low = ImageNet-like)",
        "",
    ),
    (
        "imagenet_label_nmi",
        "landmarkers",
        "how well ImageNet categories explain the classes (normalised mutual information)",
        "",
    ),
)

FEATURES: dict[str, Feature] = {
    name: Feature(name, group, description, unit) for name, group, description, unit in _TABLE
}


def describe(name: str) -> str:
    """The description of a feature, or the name itself when unknown."""
    feature = FEATURES.get(name)
    return feature.description if feature else name
