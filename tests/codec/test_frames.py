"""Frames: a model fitted on the first 20% of a bundled recording codes 64-row frames of the rest.

Every frame must decode on its own, bit-exact, with the same model or with the model rebuilt from
its gene; a frame must refuse to decode with another model (QresModelMismatch).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

import qres
from qres import datasets

FRAME = 64
CHANNELS = [(name, i) for name in datasets.names() for i in range(len(datasets.channels(name)))]
MULTI = [name for name in datasets.names() if len(datasets.channels(name)) > 1]


@lru_cache(maxsize=None)
def _channels(name: str) -> tuple[np.ndarray, ...]:
    return tuple(c.values for c in datasets.channels(name))


def channel(name: str, i: int) -> np.ndarray:
    return _channels(name)[i]


def table(name: str) -> np.ndarray:
    return np.stack(_channels(name), axis=1)  # dtype: int64 if every channel is, else float64


@lru_cache(maxsize=None)
def fitted(name: str, i: int | None) -> tuple[qres.Model, np.ndarray]:
    """(model fitted on the first 20%, the remaining 80%) of channel i, or of the whole table if i is None."""
    v = table(name) if i is None else channel(name, i)
    cut = len(v) // 5
    return qres.Model.fit(v[:cut]), v[cut:]


def frames_of(v: np.ndarray, size: int = FRAME):
    for s in range(0, len(v) - size + 1, size):
        yield v[s : s + size]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)
    )


# ------------------------------------------------------------------------------ bit-exact frames


@pytest.mark.parametrize("name,i", CHANNELS, ids=[f"{n}-{i}" for n, i in CHANNELS])
def test_frames_of_each_channel_round_trip(name, i):
    model, rest = fitted(name, i)
    assert model.n_channels == 1
    codec = qres.Codec(model)
    count = 0
    for f in frames_of(rest):
        data = codec.encode_frame(f)
        assert isinstance(data, bytes)
        got = codec.decode_frame(data)
        assert got.ndim == 1, "a 1-channel model takes and returns 1-D frames"
        assert same_bits(got, f), f"{name}[{i}] frame {count} differs"
        count += 1
    assert count >= 5


def test_frames_compress():
    """A fitted model must actually pay off on its own recording (not a tautology of the round trip)."""
    model, rest = fitted("heartpy_ppg", 0)
    codec = qres.Codec(model)
    sizes = [len(codec.encode_frame(f)) for f in frames_of(rest[:64 * 200])]
    assert np.mean(sizes) < FRAME * 8 / 4  # under 2 bytes per int64 reading


@pytest.mark.parametrize("name", MULTI)
def test_frames_of_2d_model_round_trip(name):
    model, rest = fitted(name, None)
    nch = rest.shape[1]
    assert model.n_channels == nch
    codec = qres.Codec(model)
    for k, f in enumerate(frames_of(rest)):
        got = codec.decode_frame(codec.encode_frame(f))
        assert got.shape == (FRAME, nch), "a multi-channel model returns (rows, channels)"
        assert same_bits(got, f), f"{name} frame {k} differs"


def test_frames_are_independent_and_deterministic():
    model, rest = fitted("seattle_temps", 0)
    codec = qres.Codec(model)
    frames = list(frames_of(rest[: 64 * 30]))
    encoded = [codec.encode_frame(f) for f in frames]
    assert encoded == [codec.encode_frame(f) for f in frames]
    assert encoded == [qres.Codec(model).encode_frame(f) for f in frames]
    for k in reversed(range(len(frames))):  # any order, any subset: no state between frames
        assert same_bits(codec.decode_frame(encoded[k]), frames[k])


# ------------------------------------------------------------------------------ patches


@pytest.mark.parametrize("name,i", [("seattle_temps", 0), ("waterflow", 0), ("basicmotions", 3), ("taylor_electricity", 0)])
def test_frames_with_nan_and_off_grid_values(name, i):
    model, rest = fitted(name, i)
    codec = qres.Codec(model)
    specials = np.array([np.nan, 0.123456789, -0.0, np.inf, -np.inf, 1e300, 5e-324, 17.000000001], np.float64)
    payload_nan = np.array([0x7FF4DEADBEEF0001], np.uint64).view(np.float64)
    rng = np.random.default_rng(11)
    for k, f in enumerate(frames_of(rest[: 64 * 20])):
        f = f.copy()
        idx = rng.choice(FRAME, size=1 + k % 8, replace=False)
        f[idx] = np.concatenate([specials, payload_nan])[rng.integers(0, len(specials) + 1, len(idx))]
        data = codec.encode_frame(f)
        assert same_bits(codec.decode_frame(data), f), f"frame {k} with {f[idx]!r} at {idx}"
    # a whole frame of patches, and patches at both ends
    for f in (np.full(FRAME, np.nan), np.r_[np.nan, rest[1:63], np.inf], np.full(3, 0.1234567)):
        assert same_bits(codec.decode_frame(codec.encode_frame(f)), f)


@pytest.mark.parametrize("name,i", [("daphnet_accel", 0), ("heartpy_ppg", 0)])
def test_int_frames_far_outside_training_range(name, i):
    model, rest = fitted(name, i)
    codec = qres.Codec(model)
    info = np.iinfo(np.int64)
    base = rest[:FRAME].copy()
    for vals in ([info.max], [info.min], [info.min, info.max], [0, 1, 3, 7, 1 << 40], [-(1 << 62)]):
        f = base.copy()
        f[5 : 5 + len(vals)] = vals
        assert same_bits(codec.decode_frame(codec.encode_frame(f)), f), vals
    f = np.arange(FRAME, dtype=np.int64) * 7919 - 10**12  # on a grid the model never saw
    assert same_bits(codec.decode_frame(codec.encode_frame(f)), f)


def test_2d_frames_with_patches_and_off_lattice_values():
    for name in MULTI:
        model, rest = fitted(name, None)
        codec = qres.Codec(model)
        rng = np.random.default_rng(5)
        for k, f in enumerate(frames_of(rest[: 64 * 10])):
            f = f.copy()
            r, c = rng.integers(0, FRAME, 3), rng.integers(0, f.shape[1], 3)
            if f.dtype.kind == "f":
                f[r, c] = [np.nan, 1.23456789e-7, -np.inf]
            else:
                f[r, c] = f[r, c] + rng.integers(-3, 4, 3) * 7 + 1  # off any lattice the model learnt
            assert same_bits(codec.decode_frame(codec.encode_frame(f)), f), f"{name} frame {k}"


# ------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize("rows", [1, 2, 3, 126, 127, 128, 129, 300, 4096])
@pytest.mark.parametrize("which", ["int", "float", "2d"])
def test_frame_sizes(rows, which):
    key = {"int": ("heartpy_ppg", 0), "float": ("seattle_temps", 0), "2d": ("occupancy", None)}[which]
    model, rest = fitted(*key)
    f = rest[(100 + np.arange(rows)) % len(rest)]  # wraps around on the short recordings
    codec = qres.Codec(model)
    data = codec.encode_frame(f)
    got = codec.decode_frame(data)
    assert same_bits(got, f)


@pytest.mark.parametrize("which", ["int", "float", "2d"])
def test_empty_frame(which):
    key = {"int": ("heartpy_ppg", 0), "float": ("seattle_temps", 0), "2d": ("occupancy", None)}[which]
    model, rest = fitted(*key)
    codec = qres.Codec(model)
    empty = rest[:0]
    got = codec.decode_frame(codec.encode_frame(empty))
    assert got.shape == empty.shape and got.dtype == empty.dtype


def test_frame_row_limit():
    model, rest = fitted("heartpy_ppg", 0)
    codec = qres.Codec(model)
    big = np.resize(rest, 65536)
    assert same_bits(codec.decode_frame(codec.encode_frame(big)), big)
    with pytest.raises(ValueError):
        codec.encode_frame(np.resize(rest, 65537))


def test_frame_with_wrong_dtype_or_channels_is_refused():
    model, rest = fitted("heartpy_ppg", 0)  # int64, 1 channel
    codec = qres.Codec(model)
    with pytest.raises((TypeError, ValueError)):
        codec.encode_frame(rest[:64].astype(np.float64))
    with pytest.raises((TypeError, ValueError)):
        codec.encode_frame(np.stack([rest[:64], rest[:64]], axis=1))


# ------------------------------------------------------------------------------ the gene


@pytest.mark.parametrize("key", [*CHANNELS[:1], ("seattle_temps", 0), ("basicmotions", 4), *[(n, None) for n in MULTI]], ids=str)
def test_model_gene_round_trip(key):
    model, rest = fitted(*key)
    gene = model.to_bytes()
    assert isinstance(gene, bytes) and gene == model.to_bytes()
    back = qres.Model.from_bytes(gene)
    assert back == model
    assert back.id == model.id
    assert isinstance(model.id, str) and len(model.id) == 16 and int(model.id, 16) >= 0
    assert back.to_bytes() == gene
    assert hash(back) == hash(model)
    # the gene is all a receiver needs: frames from the sender decode with the rebuilt model
    sender, receiver = qres.Codec(model), qres.Codec(back)
    for f in list(frames_of(rest))[:20]:
        data = sender.encode_frame(f)
        assert same_bits(receiver.decode_frame(data), f)
        assert receiver.encode_frame(f) == data


def test_model_fit_is_deterministic_and_data_dependent():
    v = channel("heartpy_ppg", 0)
    a = qres.Model.fit(v[:5000])
    b = qres.Model.fit(v[:5000].copy())
    c = qres.Model.fit(v[20000:25000])
    assert a == b and a.id == b.id and a.to_bytes() == b.to_bytes()
    assert a != c and a.id != c.id


# ------------------------------------------------------------------------------ model mismatch


def _other_models():
    """Pairs (model A, frames coded with A, model B) where B is another model of the same shape."""
    v = channel("heartpy_ppg", 0)
    a = qres.Model.fit(v[:10000])
    pairs = [
        (a, v[30000:36400], qres.Model.fit(v[20000:30000])),  # same signal, later stretch
        (a, v[30000:36400], qres.Model.fit(v[:10000] * 3)),  # other scale
    ]
    t = channel("seattle_temps", 0)
    pairs.append((qres.Model.fit(t[:2000]), t[2000:8400], qres.Model.fit(t[4000:6000])))
    d = table("daphnet_accel")
    pairs.append((qres.Model.fit(d[:1400]), d[1400:7000], qres.Model.fit(d[3000:4400])))
    return pairs


def test_decoding_with_another_model_raises_model_mismatch():
    outcomes: dict[str, int] = {}
    for a, data, b in _other_models():
        assert a.id != b.id
        enc, dec = qres.Codec(a), qres.Codec(b)
        for f in frames_of(data):
            frame = enc.encode_frame(f)
            try:
                dec.decode_frame(frame)
                key = "decoded"
            except qres.QresModelMismatch:
                continue
            except qres.QresFormatError as exc:
                key = f"QresFormatError: {str(exc)[:60]}"
            outcomes[key] = outcomes.get(key, 0) + 1
    assert not outcomes, f"frames decoded with another model did not raise QresModelMismatch: {outcomes}"


def test_decoding_with_a_model_of_other_channel_count_raises_model_mismatch():
    one, rest1 = fitted("daphnet_accel", 0)
    many, rest9 = fitted("daphnet_accel", None)
    frame9 = qres.Codec(many).encode_frame(rest9[:64])
    frame1 = qres.Codec(one).encode_frame(rest1[:64])
    with pytest.raises(qres.QresModelMismatch):
        qres.Codec(one).decode_frame(frame9)
    with pytest.raises(qres.QresModelMismatch):
        qres.Codec(many).decode_frame(frame1)


def test_codec_needs_a_model():
    with pytest.raises(TypeError):
        qres.Codec(b"not a model")


def test_frame_rows_setting_decides_the_one_bit_header():
    x = np.cumsum(np.random.default_rng(7).integers(-20, 21, 4000)).astype(np.int32)
    model = qres.Model.fit(x[:1000])
    usual, other = qres.Codec(model, frame_rows=32), qres.Codec(model)
    short = usual.encode_frame(x[1000:1032])
    assert np.array_equal(usual.decode_frame(short), x[1000:1032])
    # the same rows as an unusual size for a 64-row codec: a longer header, same values
    longer = other.encode_frame(x[1000:1032])
    assert len(longer) >= len(short)
    assert np.array_equal(other.decode_frame(longer), x[1000:1032])
    # a decoder that expects another usual size reads a different row count: it must not pass silently
    with pytest.raises((qres.QresModelMismatch, qres.QresFormatError)):
        other.decode_frame(short)
