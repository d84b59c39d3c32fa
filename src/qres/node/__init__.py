"""The QRES node daemon's building blocks (the layer that does I/O): identity and signed
envelopes, durable storage. The swarm rules it drives live in `qres.swarm`."""

from .identity import Envelope, Identity, ReplayGuard, did_of, open_envelope, public_key_of, seal
from .storage import PeerRecord, Store, StoredModel

__all__ = ["Envelope", "Identity", "PeerRecord", "ReplayGuard", "Store", "StoredModel", "did_of", "open_envelope", "public_key_of", "seal"]
