"""Deterministic, seeded synthetic data for reeldb benchmarks.

Generates five-level media documents (asset -> tracks -> components -> events -> regions)
and small annotation objects. Everything is driven by ``random.Random`` instances seeded
from strings (hashed with SHA-512 by the stdlib), so output is identical across runs,
processes and ``PYTHONHASHSEED`` values.

Usage::

    python benchmarks/datagen.py document --events 100000 --regions 10 --seed 0 --out doc.json
    python benchmarks/datagen.py annotations --count 10000 --seed 0 --out ann.jsonl
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from bisect import bisect
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

ZIPF_S = 1.1
"""Default Zipf exponent for label sampling."""

DEFAULT_DURATION = 3600.0
"""Default asset duration in seconds."""

_UNIT = 10_000  # bounding boxes and confidences are multiples of 1e-4
_MIN_BOX = 50  # 0.005
_MAX_BOX = 4000  # 0.4
_MIN_EVENT_MS = 40
_MAX_EVENT_MS = 5000

_NOUNS: tuple[str, ...] = (
    "car", "person", "dog", "cat", "face", "tree", "bicycle", "bus", "truck", "motorcycle",
    "boat", "airplane", "train", "bird", "horse", "cow", "sheep", "building", "house", "road",
    "sign", "lamp", "chair", "table", "bottle", "cup", "phone", "laptop", "television", "book",
    "clock", "umbrella", "backpack", "handbag", "glove", "ball", "hat", "shoe", "window", "door",
)  # fmt: skip
_MODIFIERS: tuple[str, ...] = ("red", "blue", "white", "black", "small", "large")

_WORDS_TEXT = """
a an the this that these those some every each other another many few several all one two
three four five first last next previous same different and or but while when where after
before during near behind above below under over across through into onto from with without
between around along toward inside outside against beside beyond
car cars person people man men woman women child children dog dogs cat cats face faces tree
trees bicycle bicycles bus buses truck trucks boat boats airplane train trains bird birds horse
horses cow sheep building buildings house houses road roads street streets sign signs lamp
chair chairs table tables bottle bottles cup cups phone phones laptop television book books
clock umbrella backpack handbag glove gloves ball balls hat hats shoe shoes window windows door
doors bridge river lake beach mountain hill field park garden city town village crowd team
player players referee camera screen stage kitchen office room wall floor roof sky cloud clouds
rain snow sun light shadow night morning evening
run runs running ran runner walk walks walking walked jump jumps jumping jumped drive drives
driving drove driver ride rides riding rode sit sits sitting sat stand stands standing stood
cross crosses crossing crossed change changes changing changed insult insults insulted
insulting throw throws throwing threw catch catches catching caught open opens opening opened
close closes closing closed look looks looking looked turn turns turning turned wave waves
waving waved talk talks talking talked speak speaks speaking spoke smile smiles smiling
smiled laugh laughs laughing laughed fall falls falling fell carry carries carrying carried
hold holds holding held enter enters entering entered leave leaves leaving left park parks
parking parked play plays playing played wear wears wearing wore move moves moving moved
stop stops stopping stopped appear appears appearing appeared
red blue green yellow white black grey brown orange purple small large big tiny huge tall
short long old young new bright dark quick slow fast loud quiet busy empty crowded wet dry
sunny cloudy blurry sharp distant close partial visible hidden moving parked broken shiny
happy angry sad calm surprised nervous
slowly quickly suddenly briefly again still almost nearly quite very
"""

_WORDS: tuple[str, ...] = tuple(dict.fromkeys(_WORDS_TEXT.split()))


def vocabulary() -> list[str]:
    """Return the label vocabulary in Zipf rank order (rank 1 first).

    The 40 base nouns come first, followed by ``<modifier>_<noun>`` combinations.
    """
    return list(_NOUNS) + [f"{mod}_{noun}" for mod in _MODIFIERS for noun in _NOUNS]


_VOCAB: tuple[str, ...] = tuple(vocabulary())


def words() -> list[str]:
    """Return the English word list used for free-text descriptions."""
    return list(_WORDS)


@lru_cache(maxsize=8)
def _cum_weights(s: float) -> tuple[float, ...]:
    """Cumulative Zipf weights ``sum(1 / k**s)`` over the vocabulary ranks."""
    if s <= 0:
        raise ValueError(f"Zipf exponent must be > 0, got {s}")
    total = 0.0
    cum = []
    for rank in range(1, len(_VOCAB) + 1):
        total += 1.0 / rank**s
        cum.append(total)
    return tuple(cum)


def sample_labels(n: int, *, seed: int = 0, s: float = ZIPF_S) -> list[str]:
    """Draw ``n`` Zipf-distributed labels from the vocabulary."""
    rand = random.Random(f"reeldb-datagen/{seed}/labels").random
    cum = _cum_weights(s)
    top, total = len(cum) - 1, cum[-1]
    return [_VOCAB[bisect(cum, rand() * total, 0, top)] for _ in range(n)]


def _duration_ms(duration: float) -> int:
    """Duration in whole milliseconds (rounded down so times never exceed ``duration``)."""
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    return int(duration * 1000)


def _check_counts(n_events: int, n_regions: int) -> None:
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if n_regions < 0:
        raise ValueError(f"n_regions must be >= 0, got {n_regions}")


def _track_events(
    n_events: int, n_regions: int, rng: random.Random, duration: float, s: float
) -> Iterator[dict[str, Any]]:
    """Yield ``n_events`` events with strictly increasing millisecond starts."""
    _check_counts(n_events, n_regions)
    total_ms = _duration_ms(duration)
    if n_events > total_ms:
        raise ValueError(
            f"{n_events} events do not fit in {duration} s at millisecond resolution; "
            "increase duration or use more tracks"
        )
    # Event i starts in [lo_i, lo_i + half) with lo_i = i * total_ms // n_events; since
    # lo_{i+1} - lo_i >= total_ms // n_events >= 2 * half (or half == 1), starts strictly
    # increase.
    half = max(1, (total_ms // n_events) // 2) if n_events else 1
    rand = rng.random
    cum = _cum_weights(s)
    top, cum_total = len(cum) - 1, cum[-1]
    vocab = _VOCAB
    word_list = _WORDS
    n_words = len(word_list)
    span = _MAX_EVENT_MS - _MIN_EVENT_MS
    box_span = _MAX_BOX - _MIN_BOX
    free = _UNIT - 1  # keep x + w <= 0.9999 so float addition can never exceed 1
    unit = float(_UNIT)
    for i in range(n_events):
        start = i * total_ms // n_events + int(rand() * half)
        end = start + _MIN_EVENT_MS + int(rand() * span)
        if end > total_ms:
            end = total_ms
        label = vocab[bisect(cum, rand() * cum_total, 0, top)]
        description = " ".join(
            [word_list[int(rand() * n_words)] for _ in range(5 + int(rand() * 8))]
        )
        regions = []
        for _ in range(n_regions):
            w = _MIN_BOX + int(rand() * box_span)
            h = _MIN_BOX + int(rand() * box_span)
            x = int(rand() * (free - w + 1))
            y = int(rand() * (free - h + 1))
            regions.append(
                {
                    "bounding_box": {"x": x / unit, "y": y / unit, "w": w / unit, "h": h / unit},
                    "label": label,
                    "confidence": (5000 + int(rand() * 5000)) / unit,
                }
            )
        yield {
            "time_range": {"start": start / 1000, "end": end / 1000},
            "label": label,
            "confidence": (5000 + int(rand() * 5000)) / unit,
            "description": description,
            "regions": regions,
        }


def _track_rng(seed: int, track: int) -> random.Random:
    return random.Random(f"reeldb-datagen/{seed}/track/{track}")


def _asset(seed: int, duration: float) -> dict[str, Any]:
    return {"title": f"Synthetic title {seed}", "duration": float(duration), "language": "en"}


def _track_shell(track: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": f"video-{track}",
        "type": "video",
        "frame_rate": "24000/1001",
        "components": [
            {
                "name": "detector-0",
                "algorithm": "object_detector",
                "algorithm_version": "2.3",
                "events": events,
            }
        ],
    }


def iter_events(
    n_events: int,
    n_regions: int,
    *,
    seed: int = 0,
    duration: float = DEFAULT_DURATION,
    s: float = ZIPF_S,
) -> Iterator[dict[str, Any]]:
    """Lazily yield the events of a single-track document (same as ``generate_document``)."""
    return _track_events(n_events, n_regions, _track_rng(seed, 0), duration, s)


def generate_document(
    n_events: int,
    n_regions: int,
    *,
    seed: int = 0,
    n_tracks: int = 1,
    duration: float = DEFAULT_DURATION,
    s: float = ZIPF_S,
) -> dict[str, Any]:
    """Build a media document with ``n_events`` events spread evenly over ``n_tracks`` tracks.

    Each track has one component; each event has exactly ``n_regions`` regions. The first
    ``n_events % n_tracks`` tracks get one extra event.
    """
    _check_counts(n_events, n_regions)
    if n_tracks < 1:
        raise ValueError(f"n_tracks must be >= 1, got {n_tracks}")
    per_track, extra = divmod(n_events, n_tracks)
    tracks = []
    # Millions of acyclic dicts would otherwise trigger repeated full GC passes (3-5x slower).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for t in range(n_tracks):
            count = per_track + (1 if t < extra else 0)
            events = list(_track_events(count, n_regions, _track_rng(seed, t), duration, s))
            tracks.append(_track_shell(t, events))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"asset": _asset(seed, duration), "tracks": tracks}


def write_document_json(
    path: Path,
    n_events: int,
    n_regions: int,
    *,
    seed: int = 0,
    duration: float = DEFAULT_DURATION,
    s: float = ZIPF_S,
) -> int:
    """Stream a single-track document to ``path`` without building it; return bytes written.

    Parses equal to ``generate_document(n_events, n_regions, seed=seed, n_tracks=1)``.
    """
    events = _track_events(n_events, n_regions, _track_rng(seed, 0), duration, s)
    skeleton = orjson.dumps({"asset": _asset(seed, duration), "tracks": [_track_shell(0, [])]})
    marker = b'"events":[]'
    cut = skeleton.index(marker) + len(marker) - 1
    prefix, suffix = skeleton[:cut], skeleton[cut:]
    dumps = orjson.dumps
    written = 0
    with Path(path).open("wb") as fh:
        written += fh.write(prefix)
        first = True
        for event in events:
            if first:
                first = False
            else:
                written += fh.write(b",")
            written += fh.write(dumps(event))
        written += fh.write(suffix)
    return written


def iter_annotations(
    n: int, *, seed: int = 0, duration: float = DEFAULT_DURATION, s: float = ZIPF_S
) -> Iterator[dict[str, Any]]:
    """Lazily yield ``n`` annotation objects (see ``generate_annotations``)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    total_ms = _duration_ms(duration)
    rand = random.Random(f"reeldb-datagen/{seed}/annotations").random
    cum = _cum_weights(s)
    top, cum_total = len(cum) - 1, cum[-1]
    n_words = len(_WORDS)
    span = _MAX_EVENT_MS - _MIN_EVENT_MS
    box_span = _MAX_BOX - _MIN_BOX
    free = _UNIT - 1
    unit = float(_UNIT)
    for _ in range(n):
        start = int(rand() * total_ms)
        end = min(total_ms, start + _MIN_EVENT_MS + int(rand() * span))
        w = _MIN_BOX + int(rand() * box_span)
        h = _MIN_BOX + int(rand() * box_span)
        x = int(rand() * (free - w + 1))
        y = int(rand() * (free - h + 1))
        yield {
            "temporal": {"start": start / 1000, "end": end / 1000},
            "spatial": {"x": x / unit, "y": y / unit, "w": w / unit, "h": h / unit},
            "label": _VOCAB[bisect(cum, rand() * cum_total, 0, top)],
            "confidence": (5000 + int(rand() * 5000)) / unit,
            "description": " ".join(
                [_WORDS[int(rand() * n_words)] for _ in range(5 + int(rand() * 8))]
            ),
        }


def generate_annotations(
    n: int, *, seed: int = 0, duration: float = DEFAULT_DURATION, s: float = ZIPF_S
) -> list[dict[str, Any]]:
    """Return ``n`` annotation-sized objects: temporal, spatial, label, confidence, description."""
    return list(iter_annotations(n, seed=seed, duration=duration, s=s))


def write_annotations_jsonl(path: Path, n: int, *, seed: int = 0) -> int:
    """Stream ``n`` annotations to ``path`` as JSON Lines; return bytes written."""
    dumps = orjson.dumps
    written = 0
    with Path(path).open("wb") as fh:
        for ann in iter_annotations(n, seed=seed):
            written += fh.write(dumps(ann, option=orjson.OPT_APPEND_NEWLINE))
    return written


def document_schema() -> dict[str, Any]:
    """Return the reeldb DSL document schema satisfied by generated documents."""
    return {
        "name": "synthetic_detection",
        "description": "Synthetic object detections (benchmarks/datagen.py)",
        "levels": {
            "asset": {
                "properties": {
                    "title": {"type": "text", "mandatory": True},
                    "duration": {"type": "float", "minimum": 0},
                    "language": {"type": "keyword"},
                }
            },
            "track": {
                "properties": {
                    "name": {"type": "keyword", "mandatory": True},
                    "type": {
                        "type": "enum",
                        "values": ["video", "audio", "subtitle"],
                        "mandatory": True,
                    },
                }
            },
            "component": {
                "properties": {
                    "name": {"type": "keyword", "mandatory": True},
                    "algorithm": {"type": "keyword"},
                    "algorithm_version": {"type": "keyword"},
                }
            },
            "event": {
                "properties": {
                    "label": {"type": "keyword", "mandatory": True},
                    "confidence": {"type": "float", "minimum": 0, "maximum": 1},
                    "description": {"type": "text"},
                }
            },
            "region": {
                "properties": {
                    "label": {"type": "keyword"},
                    "confidence": {"type": "float", "minimum": 0, "maximum": 1},
                }
            },
        },
    }


def annotation_schema() -> dict[str, Any]:
    """Return the reeldb DSL annotation schema satisfied by ``generate_annotations`` output."""
    return {
        "name": "DETECTION",
        "extends": ["TEMPORAL_SPATIAL_BASE"],
        "description": "A detected object in a time range and a box (benchmarks/datagen.py)",
        "properties": {
            "label": {"type": "keyword", "mandatory": True},
            "confidence": {"type": "float", "minimum": 0, "maximum": 1},
            "description": {"type": "text"},
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; prints a one-line JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser("document", help="write one single-track media document (JSON)")
    doc.add_argument("--events", type=int, required=True)
    doc.add_argument("--regions", type=int, default=0, help="regions per event")
    doc.add_argument("--seed", type=int, default=0)
    doc.add_argument("--duration", type=float, default=DEFAULT_DURATION)
    doc.add_argument("--out", type=Path, required=True)
    ann = sub.add_parser("annotations", help="write annotations as JSON Lines")
    ann.add_argument("--count", type=int, required=True)
    ann.add_argument("--seed", type=int, default=0)
    ann.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.command == "document":
        size = write_document_json(
            args.out, args.events, args.regions, seed=args.seed, duration=args.duration
        )
        summary: dict[str, Any] = {
            "path": str(args.out),
            "bytes": size,
            "events": args.events,
            "regions": args.events * args.regions,
        }
    else:
        size = write_annotations_jsonl(args.out, args.count, seed=args.seed)
        summary = {"path": str(args.out), "bytes": size, "annotations": args.count}
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")


if __name__ == "__main__":
    main()
