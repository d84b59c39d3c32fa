"""Exception types. Every failure on untrusted input is one of these, with a message that says what and where."""


class QresError(Exception):
    """Base class of every error QRES raises on purpose."""


class QresFormatError(QresError, ValueError):
    """Bytes (a file, a frame, a packet, a model) are malformed: truncated, corrupted, foreign or hostile."""


class QresModelMismatch(QresError, ValueError):
    """A frame or block names a model other than the one given to decode it."""


class QresAuthError(QresError, ValueError):
    """Authentication failed: wrong key, or encrypted data that was tampered with."""
