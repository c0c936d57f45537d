"""Schema validation throughput of small annotation objects; prints one JSON object.

Registers ``datagen.annotation_schema()`` (``DETECTION``, extending the built-in
``TEMPORAL_SPATIAL_BASE``) in an in-memory database and validates ``--count`` generated
annotations single-threaded, best of ``--runs`` runs, through:

* the compiled `SchemaValidator` (``is_valid``) - the design target is >= 200k objects/s per core;
* the public API ``Database.validate`` (schema lookup + cached validator);
* baselines in the same run: an ``orjson`` dumps+loads round trip (a cost floor) and a plain
  ``jsonschema_rs`` validator of the same compiled schema without reeldb's custom keyword
  ``x-reeldb-ordered`` (the cost of that keyword and of the Python wrapper);
* ``violations`` on 10% of the objects made invalid (start > end, or a negative width).

Usage::

    python benchmarks/bench_validation.py [--count 200000] [--seed 0] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import orjson

import datagen
import reeldb
from reeldb.schema.builtins import X_ORDERED, OrderedKeyword

NAMESPACE = "bench"
SCHEMA = "DETECTION"
TARGET_PER_CORE = 200_000
INVALID_EVERY = 10  # every 10th object is made invalid: 10%


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def strip_keyword(schema: Any, keyword: str) -> Any:
    """A copy of ``schema`` with ``keyword`` removed from every object, recursively."""
    if isinstance(schema, dict):
        return {k: strip_keyword(v, keyword) for k, v in schema.items() if k != keyword}
    if isinstance(schema, list):
        return [strip_keyword(v, keyword) for v in schema]
    return schema


def make_invalid(obj: dict[str, Any], index: int) -> dict[str, Any]:
    """A deep copy of a valid annotation broken in one place: start > end, or w < 0."""
    bad: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    if index % 2 == 0:
        temporal = bad["temporal"]
        temporal["start"], temporal["end"] = temporal["end"], temporal["start"]
    else:
        bad["spatial"]["w"] = -bad["spatial"]["w"] - 0.001
    return bad


def best_of(runs: int, fn: Callable[[], int]) -> tuple[float, int]:
    """The fastest of ``runs`` timed calls (seconds) and the value the last call returned."""
    best = float("inf")
    result = 0
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run(count: int, seed: int, runs: int) -> dict[str, Any]:
    objs = datagen.generate_annotations(count, seed=seed)
    invalid = [make_invalid(objs[i], i // INVALID_EVERY) for i in range(0, count, INVALID_EVERY)]

    with reeldb.connect("memory:") as db:
        db.create_namespace(NAMESPACE)
        db.add_schema(NAMESPACE, datagen.annotation_schema())
        schema = db.get_schema(NAMESPACE, SCHEMA)
        validator = db.schemas.validator(schema)
        plain_schema = strip_keyword(schema.json_schema, X_ORDERED)
        plain = jsonschema_rs.validator_for(plain_schema)
        keyword_only = jsonschema_rs.validator_for(
            schema.json_schema, keywords={X_ORDERED: OrderedKeyword}, offline=True
        )
        validate = db.validate

        # Correctness before speed: every generated object is valid, every broken one is not.
        assert all(validator.is_valid(o) for o in objs), "generated annotations must be valid"
        assert all(plain.is_valid(o) for o in objs)
        assert not any(validator.is_valid(o) for o in invalid), "broken objects must be invalid"
        assert all(validator.violations(o) for o in invalid)
        assert validate(NAMESPACE, SCHEMA, objs[0]) == []

        def reeldb_is_valid() -> int:
            return sum(map(validator.is_valid, objs))

        def reeldb_api() -> int:
            return sum(1 for o in objs if not validate(NAMESPACE, SCHEMA, o))

        def orjson_roundtrip() -> int:
            loads, dumps = orjson.loads, orjson.dumps
            n = 0
            for o in objs:
                loads(dumps(o))
                n += 1
            return n

        def plain_is_valid() -> int:
            return sum(map(plain.is_valid, objs))

        def keyword_is_valid() -> int:
            return sum(map(keyword_only.is_valid, objs))

        def violations() -> int:
            return sum(len(validator.violations(o)) for o in invalid)

        t_valid, n_valid = best_of(runs, reeldb_is_valid)
        t_api, n_api = best_of(runs, reeldb_api)
        t_orjson, _ = best_of(runs, orjson_roundtrip)
        t_plain, n_plain = best_of(runs, plain_is_valid)
        t_keyword, n_keyword = best_of(runs, keyword_is_valid)
        t_viol, n_viol = best_of(runs, violations)
        assert n_valid == n_api == n_plain == n_keyword == count
        assert n_viol >= len(invalid)

    valid_rate = count / t_valid
    plain_rate = count / t_plain
    return {
        "benchmark": "validation",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "jsonschema_rs": _version("jsonschema-rs"),
        "orjson": _version("orjson"),
        "reeldb": _version("reeldb"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": count,
        "seed": seed,
        "runs": runs,
        "threads": 1,
        "reeldb_validator_is_valid_per_s": round(valid_rate),
        "reeldb_validate_api_per_s": round(count / t_api),
        "orjson_roundtrip_per_s": round(count / t_orjson),
        "jsonschema_rs_plain_per_s": round(plain_rate),
        "jsonschema_rs_with_ordered_keyword_per_s": round(count / t_keyword),
        "ratio_vs_plain_jsonschema_rs": round(valid_rate / plain_rate, 3),
        "ratio_api_vs_validator": round(t_valid / t_api, 3),
        "target_per_core": TARGET_PER_CORE,
        "meets_target": valid_rate >= TARGET_PER_CORE,
        "invalid_count": len(invalid),
        "violations_found": n_viol,
        "violations_per_s": round(len(invalid) / t_viol),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200_000, help="annotations (>= 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="timed runs; the best is reported")
    args = parser.parse_args(argv)
    if args.count < INVALID_EVERY:
        parser.error(f"--count must be at least {INVALID_EVERY}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    result = run(args.count, args.seed, args.runs)
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
