"""Number formats of QRES: Q16.16 fixed point and BFP-16 block floating point.

This package is the only place that defines number formats.  Rounding everywhere
is to nearest, ties away from zero, with saturation instead of wrap-around
(``q16_sqrt`` rounds down); see the module docstrings for units and ranges.
"""

from .bfp16 import (
    BFP16_EXP_MAX,
    BFP16_EXP_MIN,
    BFP16_MAX_LEN,
    Bfp16,
    bfp16_encode,
    bfp16_from_float,
    bfp16_from_q16,
    bfp16_quantise_rows,
    bfp16_to_float,
    bfp16_to_q16,
)
from .q16 import (
    Q16_FRAC_BITS,
    Q16_MAX,
    Q16_MIN,
    Q16_ONE,
    from_q16,
    isqrt,
    q16_add,
    q16_div,
    q16_mul,
    q16_sqrt,
    q16_sub,
    to_q16,
)
from .softmax import q16_softmax

__all__ = [
    "BFP16_EXP_MAX",
    "BFP16_EXP_MIN",
    "BFP16_MAX_LEN",
    "Bfp16",
    "Q16_FRAC_BITS",
    "Q16_MAX",
    "Q16_MIN",
    "Q16_ONE",
    "bfp16_encode",
    "bfp16_from_float",
    "bfp16_from_q16",
    "bfp16_quantise_rows",
    "bfp16_to_float",
    "bfp16_to_q16",
    "from_q16",
    "isqrt",
    "q16_add",
    "q16_div",
    "q16_mul",
    "q16_softmax",
    "q16_sqrt",
    "q16_sub",
    "to_q16",
]
