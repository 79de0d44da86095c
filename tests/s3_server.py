"""A real S3 API server on 127.0.0.1 for tests: moto's server mode (PyPI ``moto[server]``).

:func:`serve_s3` starts ``ThreadedMotoServer`` on a free loopback port, creates
a bucket, and yields the endpoint; clients find it the way every AWS client
does, through ``AWS_ENDPOINT_URL`` and the ``AWS_*`` credentials, which the
caller puts into the environment (:func:`aws_env`). The server keeps the
objects in memory and goes away with the test.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

#: the test credentials (moto accepts any); the secret is what tests look for in cubes and logs
ACCESS_KEY, SECRET_KEY = "sarcube-test-key", "sarcube-test-secret-0123456789"
BUCKET = "cubes"


def aws_env(endpoint: str) -> dict[str, str]:
    """The environment an AWS client needs to reach ``endpoint`` with the test credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@contextlib.contextmanager
def serve_s3(bucket: str = BUCKET) -> Iterator[str]:
    """Run an S3 API server on 127.0.0.1 with ``bucket`` created; yields its endpoint URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
