"""QRES past one machine: a chunked zarr v3 array coded in parallel on a Dask distributed cluster.

A LocalCluster of 2 worker processes on loopback writes a multi-channel recording to a zarr v3
array on disk with `serializer=QresZarr()` (each chunk a .qres file), then reads it back, bit for
bit. The workers are separate, freshly spawned processes: they find the codec by the name stored in
the array metadata ("qres", through the ``zarr.codecs`` entry point), never by the test importing it
for them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr", reason="the zarr extra is not installed (pip install '.[zarr]')")
da = pytest.importorskip("dask.array", reason="dask is not installed (pip install 'dask[distributed]')")
distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'dask[distributed]')")

import cloudpickle  # noqa: E402  (a dependency of distributed)
import zarr  # noqa: E402

from qres import datasets  # noqa: E402
from qres.numcodecs import QresZarr  # noqa: E402

# The helpers below run on the workers: ship them by value, so a worker never imports this test
# module (and, through it, qres) just to call them.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _qres_imported() -> bool:
    return "qres.numcodecs" in sys.modules


def _read_block_by_path(path: str, rows: slice, cols: slice) -> np.ndarray:
    """On a worker: open the array from disk, as a fresh reader would, and decode one block."""
    return zarr.open_array(zarr.storage.LocalStore(path, read_only=True), mode="r")[rows, cols]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    try:
        with distributed.Client(cluster) as c:
            c.wait_for_workers(2, timeout=120)
            yield c
    finally:
        cluster.close()


def recording() -> np.ndarray:
    """A few MB of real PPG: 8 channels, each the bundled recording from another starting point."""
    ppg = datasets.values("heartpy_ppg")[:, 0]  # (68476,) int64 ADC counts
    return np.stack([np.roll(ppg, 8191 * k) for k in range(8)], axis=1)  # (68476, 8) int64, 4.4 MB


def stored_chunks(path: Path) -> list[Path]:
    return sorted(p for p in (path / "c").rglob("*") if p.is_file())


def test_zarr_array_written_and_read_in_parallel_on_a_local_cluster(client, tmp_path):
    started = time.perf_counter()
    assert set(client.run(_qres_imported).values()) == {False}, "the workers must start without qres"

    values = recording()
    x = da.from_array(values, chunks=(8192, 2))  # 9 x 4 = 36 chunks
    path = tmp_path / "ppg.zarr"
    with distributed.get_task_stream(client) as stream:
        # mode="a" (the default) writes without a lock: each dask chunk is exactly one zarr chunk
        x.to_zarr(str(path), serializer=QresZarr(), compressors=None)
    workers = set(client.scheduler_info()["workers"])
    store_tasks = [t for t in stream.data if "store" in distributed.utils.key_split(t["key"])]
    assert len(store_tasks) >= x.npartitions, [t["key"] for t in stream.data][:5]
    assert {t["worker"] for t in store_tasks} == workers, "both workers must have encoded chunks"
    assert set(client.run(_qres_imported).values()) == {True}

    # on disk: a zarr v3 array whose every chunk is a .qres file, smaller than the raw bytes
    meta = zarr.open_array(zarr.storage.LocalStore(path, read_only=True), mode="r").metadata
    assert meta.zarr_format == 3
    assert [c.to_dict()["name"] for c in meta.codecs] == ["qres"]
    chunks = stored_chunks(path)
    assert len(chunks) == x.npartitions
    assert all(p.read_bytes()[:4] == b"QRES" for p in chunks)
    stored = sum(p.stat().st_size for p in chunks)
    assert stored < values.nbytes / 4, (stored, values.nbytes)

    # fresh worker processes open the array by its path: zarr finds "qres" through the entry point
    client.restart()
    assert set(client.run(_qres_imported).values()) == {False}
    blocks = [(slice(r, r + 8192), slice(c, c + 2)) for r in range(0, values.shape[0], 8192) for c in range(0, 8, 2)]
    futures = client.map(_read_block_by_path, [str(path)] * len(blocks), *zip(*blocks), pure=False)
    for (rows, cols), got in zip(blocks, client.gather(futures)):
        assert got.dtype == values.dtype and np.array_equal(got, values[rows, cols])
    assert set(client.run(_qres_imported).values()) == {True}

    # and the whole array read back through the cluster, bit for bit
    back = da.from_zarr(str(path)).compute()
    assert back.dtype == values.dtype and back.shape == values.shape
    assert np.array_equal(back, values)
    assert time.perf_counter() - started < 120


def test_error_bounded_zarr_array_on_a_local_cluster(client, tmp_path):
    motion = np.tile(datasets.values("basicmotions"), (4, 1))  # (32000, 6) float64, 1.5 MB
    x = da.from_array(motion, chunks=(4000, 3))  # 16 chunks
    path = tmp_path / "motion.zarr"
    x.to_zarr(str(path), serializer=QresZarr(max_error=0.01), compressors=None)

    z = zarr.open_array(zarr.storage.LocalStore(path, read_only=True), mode="r")
    assert z.metadata.codecs[0].to_dict() == {"name": "qres", "configuration": {"max_error": 0.01}}
    back = da.from_zarr(z).compute()
    assert back.dtype == motion.dtype and back.shape == motion.shape
    assert np.abs(back - motion).max() <= 0.01
    chunks = stored_chunks(path)
    assert len(chunks) == x.npartitions and all(p.read_bytes()[:4] == b"QRES" for p in chunks)
    assert sum(p.stat().st_size for p in chunks) < motion.nbytes / 4
    assert np.array_equal(back, z[:])  # the cluster decodes exactly what a local reader does
