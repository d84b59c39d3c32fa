"""Durable node state: models, reputation, bans and round state survive a restart, and a node killed
with SIGKILL in the middle of writing never loses a committed model nor corrupts its database."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from qres.errors import QresFormatError
from qres.node.storage import DB_NAME, PeerRecord, Store, StoredModel

WRITER = r"""
import sys
from qres.node.storage import Store
store = Store.open(sys.argv[1])
i = 0
while True:
    store.save_model(f"m{i:06d}", bytes([i % 256]) * 2000, i, verified=i % 2 == 0)
    print(i, flush=True)  # only after the commit returned
    i += 1
"""


def test_everything_survives_a_restart(tmp_path):
    with Store.open(tmp_path) as s:
        s.save_model("aaaa", b"gene-1", 1, verified=True)
        s.save_model("bbbb", b"gene-2", 2, verified=False)
        s.save_round([PeerRecord("did:qres:" + "1" * 64, 52000, False, 10.0), PeerRecord("did:qres:" + "2" * 64, 3000, True, 11.0)],
                     {"round": 7, "regime": "calm"}, StoredModel("cccc", b"gene-3", 3, False))
        s.put("energy", 5)
    with Store.open(tmp_path) as s:
        assert s.model_ids() == ["aaaa", "bbbb", "cccc"] and s.model("cccc") == StoredModel("cccc", b"gene-3", 3, False)
        assert s.get("regime") == "calm" and s.get("energy") == 5
        assert s.latest_verified().id == "aaaa"  # round 2 was never verified: resume from round 1 (INV-7)
        assert s.model("bbbb").gene == b"gene-2"
        assert s.banned() == {"did:qres:" + "2" * 64}
        assert [p.score for p in s.peers()] == [52000, 3000]
        assert s.get("round") == 7 and s.get("missing", "x") == "x"


def test_a_later_verification_sticks_and_saving_twice_is_harmless(tmp_path):
    with Store.open(tmp_path) as s:
        s.save_model("m", b"g", 4, verified=False)
        s.save_model("m", b"g", 4, verified=True)
        s.save_model("m", b"g", 4, verified=False)
        assert s.model("m").verified and s.model_ids() == ["m"]


def test_latest_verified_prefers_the_highest_round(tmp_path):
    with Store.open(tmp_path) as s:
        assert s.latest_verified() is None
        for rnd, mid in ((3, "c"), (9, "z"), (5, "e")):
            s.save_model(mid, mid.encode(), rnd, verified=True)
        assert s.latest_verified().round == 9


def test_a_foreign_or_broken_file_is_a_clear_error(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(QresFormatError, match="not a QRES node database"):
        Store.open(tmp_path)


def test_another_schema_version_is_refused(tmp_path):
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(QresFormatError, match="schema version 99"):
        Store.open(tmp_path)


@pytest.mark.parametrize("seed", range(5))
def test_sigkill_at_a_random_moment_loses_no_committed_model(tmp_path, seed):
    """A real writer process is killed with SIGKILL mid-flight; every model it reported committed is
    there after the restart, the database passes its integrity check, and the node resumes from the
    newest verified model."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    committed = -1
    deadline = time.monotonic() + 30
    target = 5 + 7 * seed
    while committed < target and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    time.sleep(0.002 * seed)  # kill at varying points of the next transaction
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert committed >= target, "the writer did not get going"
    with Store.open(tmp_path) as s:  # integrity_check runs on open
        ids = set(s.model_ids())
        assert all(f"m{i:06d}" in ids for i in range(committed + 1))
        latest = s.latest_verified()
        assert latest.round >= committed - 1 and latest.round % 2 == 0
        assert s.model(latest.id).gene == bytes([latest.round % 256]) * 2000
