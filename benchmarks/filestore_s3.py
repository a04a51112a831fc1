"""S3 file storage against the bare boto3 client, on a throwaway SeaweedFS server (``weed mini``, 127.0.0.1).

    .venv/bin/python -m benchmarks.filestore_s3              # 21 batches per side
    .venv/bin/python -m benchmarks.filestore_s3 --quick      # 5 batches: a smoke run
    .venv/bin/python -m benchmarks.filestore_s3 --clients    # boto3 against obstore (pip install obstore)

The payload is a 30 s stereo 32 kHz PCM_16 clip's size (3,840,044 bytes). ``put``: ``S3FileStore.put``
(SHA-256 first, then one conditional PUT carrying it, as metadata and as the request's checksum) against
``put_object`` of the same bytes by the same boto3 client, to a fresh key each. ``get``: the store's
verified stream (chunks hashed, compared at the end) against ``get_object`` read whole and hashed (the fair
floor) and read whole (bare). Library and floor
batches alternate; µs per operation, median batch (fastest batch).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.harness import (
    BARE,
    FAIR,
    LIBRARY,
    Plan,
    Timed,
    Timing,
    alternate,
    command,
    load,
    machine,
    parser,
    plan_of,
)
from musicstore.filestore import open_filestore
from musicstore.filestore.s3 import S3FileStore
from musicstore.testing._seaweed import start

CLIP = 30 * 32_000 * 2 * 2 + 44
BATCH = 4


def main() -> None:
    args = parser(__doc__, sizes=str(CLIP)).parse_args()
    plan: Plan = plan_of(args)
    started = load()
    server = start()
    try:
        store = open_filestore(
            f"s3://{server.bucket}/bench/",
            endpoint_url=server.endpoint_url,
            access_key_id=server.access_key_id,
            secret_access_key=server.secret_access_key,
        )
        assert isinstance(store, S3FileStore)
        client = store._client  # the very client the store uses: the floor is the bare call
        payload = os.urandom(CLIP)
        keys = itertools.count()

        def put_library(k: int) -> Timed:
            names = [f"lib/{next(keys)}.wav" for _ in range(k)]
            return lambda: [store.put(name, payload, content_type="audio/wav") for name in names]

        def put_bare(k: int) -> Timed:
            names = [f"bench/bare/{next(keys)}.wav" for _ in range(k)]
            return lambda: [
                client.put_object(Bucket=store.bucket, Key=name, Body=payload, ContentType="audio/wav")
                for name in names
            ]

        store.put("read.wav", payload, content_type="audio/wav")

        def get_library(k: int) -> Timed:
            return lambda: [b"".join(store.get("read.wav")) for _ in range(k)]

        def get_fair(k: int) -> Timed:  # the bare read, hashed and compared as the store's is
            expected = hashlib.sha256(payload).hexdigest()

            def run() -> None:
                for _ in range(k):
                    body = client.get_object(Bucket=store.bucket, Key="bench/read.wav")["Body"].read()
                    assert hashlib.sha256(body).hexdigest() == expected

            return run

        def get_bare(k: int) -> Timed:
            return lambda: [
                client.get_object(Bucket=store.bucket, Key="bench/read.wav")["Body"].read() for _ in range(k)
            ]

        warm = Plan(plan.batches, 2, plan.scale)
        put = Timing(
            CLIP, "put 30 s clip", "write", alternate({LIBRARY: put_library, BARE: put_bare}, BATCH, warm)
        )
        print(put.line(), flush=True)
        get = Timing(
            CLIP,
            "get 30 s clip",
            "read",
            alternate({LIBRARY: get_library, FAIR: get_fair, BARE: get_bare}, BATCH, warm),
        )
        print(get.line(), flush=True)
        timings = [put, get]
    finally:
        server.stop()
    lines = [
        f"Machine: {machine()}; SeaweedFS weed mini on 127.0.0.1.",
        f"Load: {started} at the start, {load()} at the end.",
        "",
        f"    {command()}",
        "",
        "| operation | musicstore ms median (min) | fair floor ms | × fair | bare boto3 ms | × bare |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in timings:
        cells = [t.op]
        for side in (LIBRARY, FAIR, BARE):
            if side not in t.times:
                cells += ["–", "–"]
                continue
            cells.append(f"{t.median(side) / 1000:.1f} ({t.minimum(side) / 1000:.1f})")
            if side != LIBRARY:
                median, fastest = t.ratio(side)
                cells.append(f"{median:.2f}× ({fastest:.2f}×)")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))


def _client_calls(
    client: Any, ob: Any, bucket: str, payload: bytes, keys: Iterator[int]
) -> dict[str, Callable[[], object]]:
    obstore: Any = importlib.import_module("obstore")  # optional: only for this comparison, not a dependency

    def put_boto3() -> object:
        return client.put_object(Bucket=bucket, Key=f"clients/{next(keys)}", Body=payload)

    def put_obstore() -> object:
        return obstore.put(ob, f"clients/{next(keys)}", payload)

    def get_boto3() -> object:
        return client.get_object(Bucket=bucket, Key="clients/read")["Body"].read()

    def get_obstore() -> object:
        return obstore.get(ob, "clients/read").bytes()

    return {
        "put boto3": put_boto3,
        "put obstore": put_obstore,
        "get boto3": get_boto3,
        "get obstore": get_obstore,
    }


def clients(rounds: int = 15, batch: int = 4) -> None:
    """boto3 (the client musicstore uses) against obstore (Rust, object_store): PUT and GET of 1 MiB and of a
    30 s clip's size, the same bytes, to fresh keys, on one SeaweedFS; rounds alternate, the first dropped;
    ms per operation, median (fastest) round."""
    import statistics
    import time

    S3Store: Any = importlib.import_module("obstore.store").S3Store  # noqa: N806  (a class, as obstore names it)

    server = start()
    try:
        client = server.client()
        ob = S3Store(
            server.bucket, endpoint=server.endpoint_url, access_key_id=server.access_key_id,
            secret_access_key=server.secret_access_key, region=server.region,
            client_options={"allow_http": True}, virtual_hosted_style_request=False,
        )  # fmt: skip
        keys = itertools.count()
        print(f"Machine: {machine()}; SeaweedFS weed mini on 127.0.0.1; load {load()}")
        print("| operation | boto3 ms median (min) | obstore ms median (min) | obstore / boto3 |")
        print("| --- | ---: | ---: | ---: |")
        for size, name in ((1 << 20, "1 MiB"), (CLIP, "30 s clip (3.84 MB)")):
            payload = os.urandom(size)
            client.put_object(Bucket=server.bucket, Key="clients/read", Body=payload)
            sides = _client_calls(client, ob, server.bucket, payload, keys)
            times: dict[str, list[float]] = {side: [] for side in sides}
            for n in range(rounds + 1):
                for side, call in sides.items():
                    t = time.perf_counter()
                    for _ in range(batch):
                        call()
                    if n:
                        times[side].append((time.perf_counter() - t) / batch * 1000)
            for op in ("put", "get"):
                b, o = times[f"{op} boto3"], times[f"{op} obstore"]
                print(
                    f"| {op} {name} | {statistics.median(b):.1f} ({min(b):.1f}) | "
                    f"{statistics.median(o):.1f} ({min(o):.1f}) | "
                    f"{statistics.median(o) / statistics.median(b):.2f}× |"
                )
        _list_both(client, ob, server.bucket, rounds=5)
    finally:
        server.stop()


def _list_both(client: Any, ob: Any, bucket: str, *, rounds: int, count: int = 5000) -> None:
    """A listing of ``count`` keys (1,000 a page) by each client, alternating; ms per listing."""
    import statistics
    import time
    from concurrent.futures import ThreadPoolExecutor

    obstore: Any = importlib.import_module("obstore")

    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(lambda n: client.put_object(Bucket=bucket, Key=f"many/{n:06d}", Body=b"x"), range(count))
        )

    def by_boto3() -> int:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="many/")
        return sum(len(page.get("Contents", [])) for page in pages)

    def by_obstore() -> int:
        return sum(len(batch) for batch in obstore.list(ob, "many/", chunk_size=1000))

    times: dict[str, list[float]] = {"boto3": [], "obstore": []}
    for _ in range(rounds):
        for side, call in (("boto3", by_boto3), ("obstore", by_obstore)):
            t = time.perf_counter()
            assert call() == count
            times[side].append((time.perf_counter() - t) * 1000)
    b, o = times["boto3"], times["obstore"]
    print(
        f"| list {count:,} keys | {statistics.median(b):.0f} ({min(b):.0f}) | "
        f"{statistics.median(o):.0f} ({min(o):.0f}) | {statistics.median(o) / statistics.median(b):.2f}× |"
    )


if __name__ == "__main__":
    if "--clients" in sys.argv:
        clients()
    else:
        main()
