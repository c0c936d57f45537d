"""Tests for the benchmark data generator (benchmarks/datagen.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import statistics
from collections import Counter
from typing import Any

import orjson
import pytest

import datagen


def _events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for t in doc["tracks"] for c in t["components"] for e in c["events"]]


def _check_box(box: dict[str, float]) -> None:
    assert set(box) == {"x", "y", "w", "h"}
    for v in box.values():
        assert 0.0 <= v <= 1.0
        assert round(v, 4) == v
    assert box["x"] + box["w"] <= 1.0
    assert box["y"] + box["h"] <= 1.0


def test_vocabulary_and_words() -> None:
    vocab = datagen.vocabulary()
    assert len(vocab) >= 200
    assert len(set(vocab)) == len(vocab)
    assert vocab == datagen.vocabulary()
    assert vocab[:3] == ["car", "person", "dog"]
    words = datagen.words()
    assert len(set(words)) >= 300
    for w in ("running", "runs", "ran", "insult", "insulted", "insulting", "glove", "gloves"):
        assert w in words
    assert {"change", "changing"} <= set(words)


def test_document_determinism() -> None:
    a = datagen.generate_document(50, 3, seed=7, n_tracks=2)
    b = datagen.generate_document(50, 3, seed=7, n_tracks=2)
    c = datagen.generate_document(50, 3, seed=8, n_tracks=2)
    assert orjson.dumps(a) == orjson.dumps(b)
    assert _events(a) != _events(c)


def test_document_counts_and_shape() -> None:
    doc = datagen.generate_document(101, 4, seed=1, n_tracks=3, duration=120.0)
    assert doc["asset"] == {"title": "Synthetic title 1", "duration": 120.0, "language": "en"}
    assert [t["name"] for t in doc["tracks"]] == ["video-0", "video-1", "video-2"]
    per_track = [len(t["components"][0]["events"]) for t in doc["tracks"]]
    assert per_track == [34, 34, 33]
    for track in doc["tracks"]:
        assert track["type"] in {"video", "audio", "subtitle"}
        assert len(track["components"]) == 1
    assert all(len(e["regions"]) == 4 for e in _events(doc))
    empty = datagen.generate_document(0, 0)
    assert _events(empty) == []


def test_document_invariants() -> None:
    duration = 60.0
    doc = datagen.generate_document(2000, 2, seed=3, n_tracks=2, duration=duration)
    vocab = set(datagen.vocabulary())
    for track in doc["tracks"]:
        events = track["components"][0]["events"]
        starts = [e["time_range"]["start"] for e in events]
        assert all(a < b for a, b in zip(starts, starts[1:], strict=False))
        for e in events:
            tr = e["time_range"]
            assert 0.0 <= tr["start"] <= tr["end"] <= duration
            assert round(tr["start"], 3) == tr["start"]
            assert round(tr["end"], 3) == tr["end"]
            assert e["label"] in vocab
            assert 0.5 <= e["confidence"] < 1.0
            assert 5 <= len(e["description"].split()) <= 12
            for r in e["regions"]:
                _check_box(r["bounding_box"])
                assert r["label"] in vocab
                assert 0.5 <= r["confidence"] < 1.0


def test_dense_events_strictly_increasing_and_too_many_rejected() -> None:
    events = list(datagen.iter_events(1000, 0, duration=1.0))
    starts = [e["time_range"]["start"] for e in events]
    assert all(a < b for a, b in zip(starts, starts[1:], strict=False))
    assert events[-1]["time_range"]["end"] <= 1.0
    with pytest.raises(ValueError):
        datagen.generate_document(1001, 0, duration=1.0)


def test_iter_events_matches_single_track_document() -> None:
    doc = datagen.generate_document(30, 2, seed=5)
    assert list(datagen.iter_events(30, 2, seed=5)) == doc["tracks"][0]["components"][0]["events"]


@pytest.mark.parametrize(("n_events", "n_regions"), [(0, 0), (1, 0), (200, 3)])
def test_write_document_json_matches(tmp_path: Path, n_events: int, n_regions: int) -> None:
    out = tmp_path / "doc.json"
    size = datagen.write_document_json(out, n_events, n_regions, seed=11)
    data = out.read_bytes()
    assert size == len(data)
    assert orjson.loads(data) == datagen.generate_document(n_events, n_regions, seed=11)


def test_zipf_skew() -> None:
    counts = Counter(datagen.sample_labels(20_000, seed=0))
    assert set(counts) <= set(datagen.vocabulary())
    top = counts.most_common(1)[0][1]
    assert top >= 5 * statistics.median(counts.values())
    assert counts.most_common(1)[0][0] == "car"


def test_annotations() -> None:
    anns = datagen.generate_annotations(300, seed=2)
    assert len(anns) == 300
    assert anns == datagen.generate_annotations(300, seed=2)
    assert anns != datagen.generate_annotations(300, seed=3)
    vocab = set(datagen.vocabulary())
    for a in anns:
        assert set(a) == {"temporal", "spatial", "label", "confidence", "description"}
        assert set(a["temporal"]) == {"start", "end"}
        assert 0.0 <= a["temporal"]["start"] <= a["temporal"]["end"] <= 3600.0
        _check_box(a["spatial"])
        assert a["label"] in vocab
        assert 0.5 <= a["confidence"] < 1.0
        assert 5 <= len(a["description"].split()) <= 12


def test_schemas() -> None:
    doc = datagen.document_schema()
    assert doc["name"] == "synthetic_detection"
    assert list(doc["levels"]) == ["asset", "track", "component", "event", "region"]
    assert doc["levels"]["track"]["properties"]["type"]["values"] == ["video", "audio", "subtitle"]
    ann = datagen.annotation_schema()
    assert ann["name"] == "DETECTION"
    assert ann["extends"] == ["TEMPORAL_SPATIAL_BASE"]
    assert set(ann["properties"]) == {"label", "confidence", "description"}
    # Generated data carries every mandatory property.
    sample = datagen.generate_document(3, 1)
    for name, spec in doc["levels"]["event"]["properties"].items():
        if spec.get("mandatory"):
            assert name in sample["tracks"][0]["components"][0]["events"][0]
    # Fresh copies each call.
    doc["name"] = "changed"
    assert datagen.document_schema()["name"] == "synthetic_detection"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.json"
    datagen.main(["document", "--events", "10", "--regions", "2", "--seed", "4", "--out", str(out)])
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["path"] == str(out)
    assert summary["bytes"] == out.stat().st_size
    assert summary["events"] == 10
    assert summary["regions"] == 20
    assert orjson.loads(out.read_bytes()) == datagen.generate_document(10, 2, seed=4)

    jl = tmp_path / "a.jsonl"
    datagen.main(["annotations", "--count", "5", "--seed", "4", "--out", str(jl)])
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["bytes"] == jl.stat().st_size
    lines = jl.read_bytes().splitlines()
    assert [orjson.loads(x) for x in lines] == datagen.generate_annotations(5, seed=4)
