"""QRES as a numcodecs codec (id "qres") and as a zarr v3 serializer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

numcodecs = pytest.importorskip("numcodecs")

from numcodecs.tests import common  # noqa: E402  numcodecs' own conformance helpers

import qres  # noqa: E402
from qres.numcodecs import Qres  # noqa: E402

DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]


def chunk(dtype: str, shape=(64, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dtype.startswith("float"):
        x = (np.cumsum(rng.normal(size=n)) * 0.1).astype(dtype)
        x[::97] = np.nan
        x[5] = -0.0
        x[6] = np.inf
    else:
        info = np.iinfo(dtype)
        x = np.clip(np.cumsum(rng.integers(-3, 4, n)) + (info.min + info.max) // 2, info.min, info.max).astype(dtype)
        x[7] = info.max
        x[8] = info.min
    return x.reshape(shape)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


# ------------------------------------------------------------------------------ numcodecs


def test_get_codec_finds_qres_through_the_entry_point():
    codec = numcodecs.get_codec({"id": "qres"})
    assert isinstance(codec, Qres)
    assert codec.codec_id == "qres"
    assert codec.max_error is None
    lossy = numcodecs.get_codec({"id": "qres", "max_error": 0.25})
    assert isinstance(lossy, Qres) and lossy.max_error == 0.25


def test_entry_point_in_a_fresh_interpreter():
    """Without importing qres first: numcodecs must load it from the installed entry point."""
    code = "import numcodecs, sys; c = numcodecs.get_codec({'id': 'qres'}); print(type(c).__module__, type(c).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["qres.numcodecs", "Qres"]


def test_config_round_trip():
    for codec in (Qres(), Qres(max_error=0.5), Qres(max_error=3)):
        config = codec.get_config()
        assert config["id"] == "qres"
        assert json.loads(json.dumps(config)) == config  # JSON-safe, as zarr stores it
        again = Qres.from_config({k: v for k, v in config.items() if k != "id"})
        assert again == codec and again.get_config() == config
        assert numcodecs.get_codec(config) == codec
    assert Qres(max_error=0.5) != Qres()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "0.1", True])
def test_bad_max_error(bad):
    with pytest.raises(ValueError):
        Qres(max_error=bad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3000,), (64, 48), (4, 5, 6), (0,), (1,)])
def test_encode_decode(dtype, shape):
    codec = Qres()
    x = chunk(dtype, shape) if np.prod(shape) > 10 else np.zeros(shape, dtype)
    enc = codec.encode(x)
    assert isinstance(enc, bytes)
    dec = codec.decode(enc)
    assert dec.ndim == 1 and dec.dtype == x.dtype and dec.size == x.size
    assert same_bits(dec, x.reshape(-1))
    # into a preallocated chunk of the original shape (what zarr v2 does)
    out = np.empty_like(x)
    res = codec.decode(enc, out=out)
    assert same_bits(out, x)
    assert res is out or np.shares_memory(res, out)


def test_encode_accepts_buffers_and_non_contiguous_arrays():
    codec = Qres()
    x = chunk("int16", (64, 48))
    for view in (x[::2, ::3], x.T, np.asfortranarray(x)):  # memory order, or C order for a strided view
        assert same_bits(codec.decode(codec.encode(view)), np.ravel(view, order="A"))
    # buffer-protocol objects keep their item type
    arr = np.arange(100, dtype=np.float32)
    assert same_bits(codec.decode(codec.encode(memoryview(arr))), arr)
    # a bytes object is a buffer of uint8
    assert same_bits(codec.decode(codec.encode(b"\x01\x02\x03")), np.array([1, 2, 3], np.uint8))
    # decode takes any buffer holding the encoded bytes
    enc = codec.encode(arr)
    assert same_bits(codec.decode(bytearray(enc)), arr)
    assert same_bits(codec.decode(np.frombuffer(enc, np.uint8)), arr)
    assert same_bits(codec.decode(memoryview(enc)), arr)


@pytest.mark.parametrize("dtype", ["int16", "int32", "float32", "float64"])
def test_lossy_codec(dtype):
    x = chunk(dtype, (5000,), seed=4)
    codec = Qres(max_error=2.0)
    dec = codec.decode(codec.encode(x))
    assert dec.dtype == x.dtype
    a, b = x.astype(np.float64), dec.astype(np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b))
    fin = np.isfinite(a)
    assert np.all(np.abs(a[fin] - b[fin]) <= 2.0)
    assert np.array_equal(a[np.isinf(a)], b[np.isinf(a)])
    assert len(codec.encode(x)) < len(Qres().encode(x))


def test_decode_garbage_raises_qres_error():
    with pytest.raises(qres.QresFormatError):
        Qres().decode(b"not a qres chunk at all")


# ------------------------------------------------------------------------------ numcodecs' conformance helpers

CODECS = [Qres(), Qres(max_error=0.01)]
PRECISION = [None, 2]  # decimals check_encode_decode compares to (max_error 0.01 < 1.5e-2)


def conformance_arrays() -> list[np.ndarray]:
    """Every supported dtype (both byte orders), 1-D to 3-D, C and Fortran order, empty and strided."""
    out = []
    for i, dtype in enumerate(DTYPES):
        x = chunk(dtype, (24, 10, 3), seed=i)
        out += [x[:, :, 0].ravel(), x, np.asfortranarray(x), np.asfortranarray(x[:, :, 1])]
    out += [
        np.arange(1000, dtype="i4").reshape(100, 10, order="F"),  # issue #9: 990 of 1,000 values came back wrong
        chunk("int32", (30, 20)).astype(">i4"),
        np.asfortranarray(chunk("float64", (30, 20))).astype(">f8", order="F"),
        chunk("int16", (40, 30))[::3, 1::2],
        np.zeros(0, "f4"),
        np.zeros((0, 5), "u2", order="F"),
        np.array(7, "i8"),
    ]
    return out


ARRAYS = conformance_arrays()
LOSSY_ARRAYS = [np.asfortranarray(chunk("float64", (40, 25), seed=11)), chunk("float32", (300,), seed=12),
                np.asfortranarray(chunk("int16", (20, 30), seed=13))]


def array_id(a: np.ndarray) -> str:
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C" if a.flags.c_contiguous else "strided"
    return f"{a.dtype.str}-{'x'.join(map(str, a.shape))}-{order}"


@pytest.mark.parametrize("arr", ARRAYS, ids=array_id)
def test_numcodecs_check_encode_decode(arr):
    common.check_encode_decode(arr, Qres())
    common.check_encode_decode_array(arr, Qres())


def test_numcodecs_check_encode_decode_datetime():
    """Datetimes are coded as their int64 counts (numcodecs' ensure_contiguous_ndarray); zarr views them back."""
    common.check_encode_decode(np.arange(60).astype("M8[s]").reshape(6, 10, order="F"), Qres())


@pytest.mark.parametrize("arr", LOSSY_ARRAYS, ids=array_id)
def test_numcodecs_check_encode_decode_lossy(arr):
    common.check_encode_decode(arr, CODECS[1], precision=PRECISION[1])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    arr=hnp.arrays(st.sampled_from(DTYPES + [">i2", ">u4", ">f4", ">f8"]), hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12)),
    fortran=st.booleans(),
)
def test_numcodecs_check_encode_decode_fuzz(arr, fortran):
    common.check_encode_decode_array(np.asfortranarray(arr) if fortran else arr, Qres())


@pytest.mark.parametrize("codec", CODECS, ids=repr)
def test_numcodecs_check_config(codec):
    common.check_config(codec)


def test_numcodecs_check_repr(monkeypatch):
    # check_repr evaluates the repr in numcodecs.tests.common, whose names are numcodecs' own codecs;
    # a third-party codec's class name has to be put there
    monkeypatch.setattr(common, "Qres", Qres, raising=False)
    common.check_repr("Qres(max_error=None)")
    common.check_repr("Qres(max_error=0.5)")


def test_numcodecs_check_errors_on_object_buffers():
    common.check_err_decode_object_buffer(Qres())
    common.check_err_encode_object_buffer(Qres())


def test_numcodecs_check_max_buffer_size():
    codec = Qres()
    common.check_max_buffer_size(codec)
    assert codec.max_buffer_size == 2**31 - 1
    assert codec.get_config() == {"id": "qres", "max_error": None} and repr(codec) == "Qres(max_error=None)"


def test_max_buffer_size_bounds_the_decoded_chunk():
    codec = Qres()
    enc = codec.encode(np.zeros(5000, np.int64))  # 40,000 bytes from a few hundred
    codec.max_buffer_size = len(enc)
    with pytest.raises(ValueError, match="decodes to 40000 bytes"):
        codec.decode(enc)


def test_decode_into_out_of_the_wrong_size():
    codec = Qres()
    enc = codec.encode(np.arange(10, dtype=np.int32))
    with pytest.raises(ValueError, match="out has 36 bytes"):
        codec.decode(enc, out=np.empty(9, np.int32))
    with pytest.raises(ValueError, match="contiguous"):
        codec.decode(enc, out=np.empty(20, np.int32)[::2])


# fixtures written once by check_backwards_compatibility (tests/fixture/qres); decoding them must not change
FIXTURE_ARRAYS = [
    np.arange(1000, dtype="i4").reshape(100, 10, order="F"),
    chunk("int16", (50, 4, 3), seed=21),
    np.asfortranarray(chunk("uint8", (40, 25), seed=22)),
    chunk("uint64", (500,), seed=23),
    np.asfortranarray(np.round(chunk("float64", (100, 10), seed=24), 2)),
    chunk("float32", (600,), seed=25),
    chunk("int64", (30, 30), seed=26).astype(">i8"),
]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_numcodecs_check_backwards_compatibility(monkeypatch, version):
    """Chunks written by every array format version still decode: v1 by qres 0.1 (each block's check
    covered the model tag only), v2 by this format. A new format version adds a folder, recorded
    once with QRES_RECORD_FIXTURES=1; the folders of older versions are never re-recorded."""
    here = Path(__file__).parent
    fixture = here / "fixture" / "qres" / version
    expected = [fixture / f"array.{i:02d}.npy" for i in range(len(FIXTURE_ARRAYS))] + [
        fixture / f"codec.{j:02d}" / name for j in range(len(CODECS)) for name in ["config.json"] + [f"encoded.{i:02d}.dat" for i in range(len(FIXTURE_ARRAYS))]
    ]
    missing = [str(p.relative_to(here)) for p in expected if not p.exists()]
    assert not missing or os.environ.get("QRES_RECORD_FIXTURES"), f"committed fixtures missing (the helper would write new ones and test nothing): {missing}"
    monkeypatch.chdir(here)  # the helper reads fixture/<codec id> relative to the working directory
    common.check_backwards_compatibility(Qres.codec_id, FIXTURE_ARRAYS, CODECS, precision=PRECISION, prefix=version)


# ------------------------------------------------------------------------------ zarr v3


@pytest.fixture
def zarr():
    zarr = pytest.importorskip("zarr")
    if int(zarr.__version__.split(".")[0]) < 3:
        pytest.skip("zarr 3 needed")
    return zarr


# zarr warns that "qres" is not a codec of the zarr v3 specification
quiet = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@quiet
@pytest.mark.parametrize("dtype", ["int16", "int32", "uint16", "float32", "float64"])
def test_zarr_v3_array_round_trip(zarr, tmp_path, dtype):
    from qres.numcodecs import QresZarr

    rng = np.random.default_rng(7)
    if dtype.startswith("float"):
        data = np.cumsum(rng.normal(size=(130, 70)), axis=0).astype(dtype)
        data[3, 4] = np.nan
    else:
        data = (np.cumsum(rng.integers(-2, 3, size=(130, 70)), axis=0) + 1000).astype(dtype)
    path = tmp_path / "a.zarr"
    z = zarr.create_array(store=str(path), shape=data.shape, chunks=(64, 32), dtype=dtype,
                          serializer=QresZarr(), compressors=None, fill_value=0)
    z[:] = data  # partial edge chunks included (130 x 70 in 64 x 32 chunks)
    back = zarr.open_array(str(path), mode="r")
    got = back[:]
    assert same_bits(got, data)
    assert same_bits(back[10:100, 5:60], data[10:100, 5:60])
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["codecs"] == [{"name": "qres", "configuration": {"max_error": None}}]
    # the chunks on disk really are .qres files
    chunk_file = next(p for p in path.rglob("*") if p.is_file() and p.name != "zarr.json")
    assert chunk_file.read_bytes()[:4] == b"QRES"


@quiet
def test_zarr_v3_lossy(zarr, tmp_path):
    from qres.numcodecs import QresZarr

    data = np.cumsum(np.random.default_rng(8).normal(size=(200, 10)), axis=0)
    z = zarr.create_array(store=str(tmp_path / "l.zarr"), shape=data.shape, chunks=(50, 10), dtype="float64",
                          serializer=QresZarr(max_error=0.01), compressors=None)
    z[:] = data
    got = zarr.open_array(str(tmp_path / "l.zarr"), mode="r")[:]
    assert np.max(np.abs(got - data)) <= 0.01
    assert not np.array_equal(got, data)


@quiet
def test_zarr_v3_reader_needs_only_the_installed_package(zarr, tmp_path):
    """A fresh interpreter that never imports qres opens the array: zarr finds the codec by its entry point."""
    from qres.numcodecs import QresZarr

    data = np.arange(1000, dtype=np.int32).reshape(50, 20)
    z = zarr.create_array(store=str(tmp_path / "e.zarr"), shape=data.shape, chunks=(25, 20), dtype="int32",
                          serializer=QresZarr(), compressors=None)
    z[:] = data
    code = (
        "import sys, warnings, zarr, numpy as np\n"
        "warnings.simplefilter('ignore')\n"
        f"a = zarr.open_array({str(tmp_path / 'e.zarr')!r}, mode='r')[:]\n"
        "print(int(a.sum()), a.dtype)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(int(data.sum())), "int32"]


@quiet
@pytest.mark.parametrize("order", ["C", "F"])
def test_zarr_v2_takes_the_plain_numcodecs_codec(zarr, tmp_path, order):
    data = np.cumsum(np.random.default_rng(9).integers(-3, 4, size=(100, 40)), axis=1).astype(np.int16)
    path = tmp_path / "v2.zarr"
    z = zarr.create_array(store=str(path), shape=data.shape, chunks=(30, 40), dtype="int16",
                          compressors=Qres(), filters=None, zarr_format=2, order=order)
    z[:] = data
    got = zarr.open_array(str(path), mode="r")[:]
    assert same_bits(got, data)
    # a chunk decodes to the bytes zarr v2 defines for it: the chunk in the array's order
    assert Qres().decode((path / "0.0").read_bytes()).tobytes() == data[:30].tobytes(order=order)


@quiet
def test_zarr_v3_fortran_memory_order(zarr, tmp_path):
    """zarr v3 chunks are C-order bytes whatever order the array keeps in memory."""
    from qres.numcodecs import QresZarr

    data = np.cumsum(np.random.default_rng(10).integers(-3, 4, size=(60, 40)), axis=0).astype(np.int32)
    path = tmp_path / "f.zarr"
    z = zarr.create_array(store=str(path), shape=data.shape, chunks=(30, 40), dtype="int32",
                          serializer=QresZarr(), compressors=None, config={"order": "F"})
    z[:] = np.asfortranarray(data)  # whole chunks reach the serializer as Fortran-ordered views
    assert same_bits(zarr.open_array(str(path), mode="r")[:], data)
    assert same_bits(qres.decompress((path / "c" / "0" / "0").read_bytes()), data[:30].reshape(-1))
