"""Annotations (Marken): typed, versioned metadata on any entity, searchable every way.

Use them through ``Database.annotations`` (`Annotations`).
"""

from reeldb.annotations._service import MAX_BATCH, MAX_TIMELINE, Annotations
from reeldb.annotations.model import (
    Annotation,
    AnnotationHit,
    Association,
    NewAnnotation,
    TypeRef,
)

__all__ = [
    "MAX_BATCH",
    "MAX_TIMELINE",
    "Annotation",
    "AnnotationHit",
    "Annotations",
    "Association",
    "NewAnnotation",
    "TypeRef",
]
