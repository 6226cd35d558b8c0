"""Small S3 operations for the PITR tests, run with the venv's python (boto3).

    s3ctl.py exists BUCKET              exit 0 if the bucket exists, 1 if not
    s3ctl.py keys BUCKET [PREFIX]       print every key (sorted), one a line
    s3ctl.py get BUCKET KEY             object body to stdout
    s3ctl.py put BUCKET KEY FILE        upload FILE
    s3ctl.py delete BUCKET KEY          delete one object
    s3ctl.py clone SRC_ENDPOINT BUCKET  copy every object of BUCKET at SRC_ENDPOINT (same keys as
                                        ours) into BUCKET here (created if missing)

The endpoint and keys come from the environment: S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (tests/pg/s3.sh writes them into DIR/env).
"""

import os
import sys

import boto3
import botocore.config
import botocore.exceptions


def client(endpoint=None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint or os.environ["S3_ENDPOINT_URL"],
        config=botocore.config.Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2}),
    )


def keys(s3, bucket, prefix=""):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    op, args = argv[0], argv[1:]
    s3 = client()
    if op == "exists":
        try:
            s3.head_bucket(Bucket=args[0])
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchBucket"):
                return 1
            raise
        return 0
    if op == "keys":
        for key in sorted(keys(s3, args[0], args[1] if len(args) > 1 else "")):
            print(key)
        return 0
    if op == "get":
        sys.stdout.buffer.write(s3.get_object(Bucket=args[0], Key=args[1])["Body"].read())
        return 0
    if op == "put":
        s3.upload_file(args[2], args[0], args[1])
        return 0
    if op == "delete":
        s3.delete_object(Bucket=args[0], Key=args[1])
        return 0
    if op == "clone":
        src = client(args[0])
        bucket = args[1]
        try:
            s3.head_bucket(Bucket=bucket)
        except botocore.exceptions.ClientError:
            s3.create_bucket(Bucket=bucket)
        n = 0
        for key in keys(src, bucket):
            body = src.get_object(Bucket=bucket, Key=key)["Body"].read()
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            n += 1
        print(n)
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
