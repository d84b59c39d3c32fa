"""The benchmark's peer codecs (qres.peers): round trips, sizes, bounds, and src/qres/data/README.md's figures."""

from __future__ import annotations

import numpy as np
import pytest

from qres import datasets, peers

LOSSLESS = [p for p in peers.lossless_peers()]
FRAME = [p for p in peers.frame_peers()]
LOSSY = [p for p in peers.lossy_peers()]


def _need(peer):
    if not peer.available():
        pytest.skip(f"{peer.name} is not installed")


@pytest.fixture(scope="module")
def ppg():
    return peers.int_view(datasets.channels("heartpy_ppg")[0].exact_integers)


@pytest.fixture(scope="module")
def lux():
    # occupancy's light channel: its exact integers need int64.
    return peers.int_view(datasets.channels("occupancy")[2].exact_integers)


def test_int_view_widths(ppg, lux):
    assert ppg.dtype == np.int32
    assert lux.dtype == np.int64
    assert peers.int_view(np.array([2**31 - 1, -(2**31)])).dtype == np.int32
    assert peers.int_view(np.array([2**31])).dtype == np.int64
    with pytest.raises(TypeError):
        peers.int_view(np.array([1.5]))


@pytest.mark.parametrize("peer", LOSSLESS, ids=lambda p: p.name)
def test_lossless_roundtrip_and_size(peer, ppg, lux):
    _need(peer)
    extremes = np.array([2**31 - 1, -(2**31), 0, 2**31 - 1, -(2**31), 5, -7], dtype=np.int32)
    for a in (ppg[:5000], lux, extremes, ppg[:1]):
        blob = peer.compress(a)
        back = peer.decompress(blob, a.dtype, a.size)
        assert back.dtype == a.dtype
        np.testing.assert_array_equal(back, a)
        m = peer.measure(a)
        assert m.roundtrip_ok is True
        assert m.nbytes == len(blob)
        assert m.bits_per_value == pytest.approx(8 * len(blob) / a.size)
        assert m.bits_per_value > 0


def test_conv1_falls_back_on_int64(lux):
    peer = peers.PcodecPeer("pcodec try_conv1(8)", peers._pco_conv1(8))
    _need(peer)
    m = peer.measure(lux)
    assert m.extra.get("fallback") == "default config"
    assert m.nbytes == len(peers.PcodecPeer("pcodec default").compress(lux))


@pytest.mark.parametrize("name", list(peers.README_LOSSLESS))
def test_reproduces_readme_lossless_table(name):
    chans = [peers.int_view(c.exact_integers) for c in datasets.channels(name)]
    n = sum(a.size for a in chans)
    for peer in LOSSLESS:
        if not peer.available():
            continue
        bpv = 8 * sum(len(peer.compress(a)) for a in chans) / n
        assert bpv == pytest.approx(peers.README_LOSSLESS[name][peer.name], abs=0.006), peer.name


@pytest.mark.parametrize("peer", FRAME, ids=lambda p: p.name)
def test_frame_peer_roundtrip_and_size(peer):
    _need(peer)
    a = peers.int_view(datasets.channels("seattle_temps")[0].exact_integers)
    cut = peers.split_train(a.size)
    coder = peer.fit(a[:cut], a.dtype)
    frames = peers.frames_of(a[cut:])
    assert all(len(f) == peers.FRAME_SIZE for f in frames)
    total = 0
    for f in frames[:40]:
        blob = coder.encode_frame(f)
        total += len(blob)
        back = coder.decode_frame(blob)
        assert back.dtype == f.dtype
        np.testing.assert_array_equal(back, f)
    m = peer.measure(a)
    assert m.roundtrip_ok is True
    assert m.n_values == len(frames) * peers.FRAME_SIZE
    assert m.bits_per_value == pytest.approx(8 * m.nbytes / m.n_values)
    assert m.bits_per_value > 0


def test_frame_pcodec_reproduces_readme():
    peer = peers.PcodecFramePeer()
    _need(peer)
    for name in ("seattle_temps", "taylor_electricity"):
        ms = [peer.measure(peers.int_view(c.exact_integers)) for c in datasets.channels(name)]
        bpv = 8 * sum(m.nbytes for m in ms) / sum(m.n_values for m in ms)
        assert bpv == pytest.approx(peers.README_FRAMES[name], abs=0.006)


def test_zstd_dictionary_needs_enough_training_data():
    peer = peers.ZstdDictFramePeer(deltas=True)
    _need(peer)
    with pytest.raises(ValueError):
        peer.fit(np.arange(100, dtype=np.int32))


@pytest.mark.parametrize("peer", LOSSY, ids=lambda p: p.name)
def test_lossy_peers_hold_the_bound_on_real_channels(peer):
    _need(peer)
    for name in datasets.names():
        for c in datasets.channels(name):
            x = np.asarray(c.values, dtype=np.float64)
            for rel in (0.01, 0.1):
                e = rel * float(np.std(x))
                blob = peer.compress(x, e)
                back = peer.decompress(blob, x.size)
                assert back.shape == x.shape
                assert np.max(np.abs(back - x)) <= e, (name, c.name, rel)
                m = peer.measure(x, e)
                assert m.roundtrip_ok is True and m.error_ratio <= 1
                assert m.bits_per_value == pytest.approx(8 * m.nbytes / x.size)
                assert 0 < m.bits_per_value < 64


def test_quantiser_holds_the_bound_at_half_steps():
    peer = peers.QuantPcodecPeer()
    _need(peer)
    rng = np.random.default_rng(1)
    for e in (0.1, 0.3, 1e-3, 0.05 / 3, 7.7):
        k = rng.integers(-10**6, 10**6, size=20000)
        x = (k + 0.5) * (2 * e)  # every value on a rounding edge
        x = np.concatenate([x, np.nextafter(x, np.inf), np.nextafter(x, -np.inf)])
        back = peer.decompress(peer.compress(x, e), x.size)
        assert np.max(np.abs(back - x)) <= e


def test_pcodec_speed_reports_positive_rates(ppg):
    pytest.importorskip("pcodec")
    s = peers.pcodec_speed(np.tile(ppg, 2), repeats=2)
    assert s["encode_MBps"] > 0 and s["decode_MBps"] > 0
    assert s["samples"] == 2 * ppg.size


def test_qres_raas_unavailable_without_interpreter(monkeypatch):
    monkeypatch.delenv("QRES_RAAS_PYTHON", raising=False)
    assert not peers.QresRaasPeer().available()
    monkeypatch.setenv("QRES_RAAS_PYTHON", "/nonexistent/python")
    assert not peers.QresRaasPeer().available()


def test_qres_raas_when_configured(ppg):
    peer = peers.QresRaasPeer()
    if not peer.available():
        pytest.skip("QRES_RAAS_PYTHON does not point to an interpreter with qres-raas")
    m = peer.measure(ppg[:3000])
    assert m.extra["status"] in ("compressed", "stored raw")
    assert m.bits_per_value > 0 and m.extra["ms_per_call"] > 0


# --------------------------------------------------------------------------------------------
# The stronger peers of issue #10 and the per-channel best
# --------------------------------------------------------------------------------------------

STRONG = peers.strong_peers()


@pytest.mark.parametrize("peer", STRONG, ids=lambda p: p.name)
def test_strong_peer_roundtrip_or_declines(peer, ppg, lux):
    _need(peer)
    temps = datasets.channels("seattle_temps")[0]
    floats = np.asarray(temps.values, dtype=np.float64)
    wide = np.array([2**31 - 1, -(2**31), 0, 5, -7, 2**31 - 1], dtype=np.int32)
    small = np.array([3, -2, 0, 127, -128, 1], dtype=np.int32)
    cases = [floats] if getattr(peer, "on_floats", False) else [ppg[:5000], lux, wide, small, ppg[:1]]
    took = 0
    for a in cases:
        m = peer.measure(a)
        if m is None:  # declined: the codec cannot take these values, and says so instead of failing
            assert not peer.accepts(a)
            continue
        took += 1
        blob = peer.compress(a)
        back = peer.decompress(blob, a.dtype, a.size)
        assert back.dtype == a.dtype and back.tobytes() == a.tobytes()
        assert m.roundtrip_ok is True and m.nbytes == len(blob)
        assert m.bits_per_value == pytest.approx(8 * len(blob) / a.size)
    assert took >= 1
    if getattr(peer, "on_floats", False):
        assert peer.measure(ppg) is None  # integer columns are not float columns


def test_strong_peers_decline_what_they_cannot_take(lux):
    wide24 = np.array([0, 2**24, -5], dtype=np.int32)
    for peer, a in ((peers.FlacPeer(), wide24), (peers.JpeglsPeer(), np.array([0, 70000], dtype=np.int32)),
                    (peers.RicePeer(), lux), (peers.AecPeer(), lux),
                    (peers.StrictPcodecPeer("c", peers._pco(12, "try_conv1", 8)), lux)):
        if peer.available():
            assert peer.measure(a) is None, peer.name


def test_flac_takes_24_bit_values():
    peer = peers.FlacPeer()
    _need(peer)
    a = np.array([0, 2**23 - 1, -(2**23), 12345, -1] * 50, dtype=np.int32)
    m = peer.measure(a)
    assert m is not None and m.roundtrip_ok is True


@pytest.mark.parametrize("peer", [p for p in LOSSY if isinstance(p, peers.QuantInt32Peer)], ids=lambda p: p.name)
def test_quantise_int32_peers_hold_the_bound(peer):
    _need(peer)
    x = np.asarray(datasets.channels("taylor_electricity")[0].values, dtype=np.float64)
    e = 0.01 * float(np.std(x))
    m = peer.measure(x, e)
    assert m is not None and m.roundtrip_ok is True and m.error_ratio <= 1
    assert peer.measure(x, 1e-12 * float(np.abs(x).max())) is None  # the quantised values do not fit int32


@pytest.mark.parametrize("peer", [p for p in FRAME if isinstance(p, peers.StreamFramePeer)], ids=lambda p: p.name)
def test_stream_frame_peers_decline_int64(peer, lux):
    _need(peer)
    with pytest.raises(ValueError):
        peer.measure(lux, frame=16)


def test_per_channel_best_arithmetic():
    sizes = {
        "a": {"p": 100, "q": 80, "r": None},  # q wins
        "b": {"p": 50, "q": 90, "r": 70},  # p wins
        "c": {"p": 40, "q": 30, "r": 10},  # r wins, but its round trip failed: q
    }
    ok = {"c": {"r": False}}
    total, winners = peers.per_channel_best(sizes, ok)
    assert total == 80 + 50 + 30
    assert winners == {"a": "q", "b": "p", "c": "q"}
    total, winners = peers.per_channel_best(sizes)
    assert total == 80 + 50 + 10 and winners["c"] == "r"
    # every single peer's total is larger than the per-channel best
    assert total < min(sum(s[p] for s in sizes.values() if s[p] is not None) for p in "pq")
    total, winners = peers.per_channel_best({"a": {"p": None}, "b": {"p": 3}})
    assert total is None and winners == {"a": None, "b": "p"}


def test_benchmark_best_per_channel_figure():
    from qres import benchmark

    ds = benchmark.Dataset("mix", "test", [datasets.channels("heartpy_ppg")[0], datasets.channels("seattle_temps")[0]])
    ds = benchmark.Dataset("mix", "test", [c for c in ds.channels])
    n1 = min(len(c.exact_integers) for c in ds.channels)
    chans = [datasets.Channel(c.name, c.decimals, c.exact_integers[:n1]) for c in ds.channels]
    ds = benchmark.Dataset("mix", "test", chans)
    use = [p for p in (peers.ZstdPeer(19, deltas=True), peers.FlacPeer(), peers.XzDeltaPeer()) if p.available()]
    r = benchmark.run_lossless([ds], qres=False, peers=use)["datasets"]["mix"]
    n = sum(len(c.exact_integers) for c in chans)
    expect = 0
    for c in chans:
        a = peers.int_view(c.exact_integers)
        expect += min(m.nbytes for m in (p.measure(a) for p in use) if m is not None)
    assert r["best_per_channel_bpv"] == pytest.approx(8 * expect / n)
    assert r["best_per_channel_bpv"] <= r["best_peer_bpv"] + 1e-12
