"""A Dask client for work that runs past one process: a LocalCluster started here, or a running
scheduler. Imported lazily: Dask is optional (`pip install 'tercap[dask]'`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tercap.errors import TercapError


@contextmanager
def dask_client(address: str, workers: int) -> Iterator[Any]:
    """A `dask.distributed.Client`: `address="local"` starts a LocalCluster of `workers` one-thread
    processes (closed on exit), `address="tcp://host:port"` connects to a running scheduler."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise TercapError("Dask is not installed: pip install 'tercap[dask]'") from exc
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None) if address == "local" else None
    try:
        with Client(cluster if cluster is not None else address) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()
