"""Weak annotations as data: one JSON format (``schema.json``, ``docs/weak_annotations.md``), a validating reader,
and the separate step that simulates such a file from full masks (``python -m weakseg.annotations simulate``)."""

from weakseg.annotations.io import (
    FORMAT,
    KINDS,
    AnnotationError,
    WeakAnnotations,
    annotation_labels,
    class_names,
    annotation_name,
    image_geometry,
    load_weak_annotations,
    schema_path,
)
from weakseg.annotations.simulate import (
    dataset_sections,
    derive_slice_annotations,
    read_label,
    simulate_weak_annotations,
)

__all__ = [
    "FORMAT",
    "KINDS",
    "AnnotationError",
    "WeakAnnotations",
    "annotation_labels",
    "class_names",
    "annotation_name",
    "image_geometry",
    "load_weak_annotations",
    "schema_path",
    "dataset_sections",
    "derive_slice_annotations",
    "read_label",
    "simulate_weak_annotations",
]
