"""An S3 server on loopback (moto) for the S3 blob store, with a fresh bucket per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1, with dummy credentials in the environment."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@dataclass
class Bucket:
    """A bucket on the moto server, with raw access to the objects at rest."""

    name: str
    endpoint: str
    client: Any

    def names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def read(self, name: str) -> bytes:
        answer = self.client.get_object(Bucket=self.name, Key=name)
        return answer["Body"].read()  # type: ignore[no-any-return]

    def write(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=name, Body=data)

    def uploads(self) -> list[dict[str, Any]]:
        """Multipart uploads still open."""
        answer = self.client.list_multipart_uploads(Bucket=self.name)
        return answer.get("Uploads", [])  # type: ignore[no-any-return]


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Bucket:
    """A new empty bucket."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    bucket = Bucket(f"reel-{uuid.uuid4().hex[:12]}", s3_endpoint, client)
    client.create_bucket(Bucket=bucket.name)
    return bucket
