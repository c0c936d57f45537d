"""Annotations to and from other formats: W3C Web Annotation (`w3c`), COCO and CVAT (`boxes`).

Pure conversions: no I/O and no database. The service layer reads and writes the files and
stores what these functions return (`Annotations.export_w3c`, `import_w3c`, `import_coco`,
`import_cvat`).
"""

from reeldb.annotations.interop.boxes import from_coco, from_cvat
from reeldb.annotations.interop.w3c import (
    ANNO_CONTEXT,
    ASSOCIATION_URN_PREFIX,
    MEDIA_FRAGMENTS,
    PAYLOAD_FORMAT,
    association_from_urn,
    association_urn,
    from_w3c,
    from_w3c_many,
    to_w3c,
    w3c_collection,
)

__all__ = [
    "ANNO_CONTEXT",
    "ASSOCIATION_URN_PREFIX",
    "MEDIA_FRAGMENTS",
    "PAYLOAD_FORMAT",
    "association_from_urn",
    "association_urn",
    "from_coco",
    "from_cvat",
    "from_w3c",
    "from_w3c_many",
    "to_w3c",
    "w3c_collection",
]
