"""The QRES codec layer: the `.qres` container and the codecs that fill it."""
