"""read_channel: one numeric column of a user's CSV as exact integers, or a clear error."""

import numpy as np
import pytest

from qres import datasets


def test_first_numeric_column_as_exact_integers(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("time,temp,label\n2026-01-01,21.5,a\n2026-01-02,-3.25,b\n2026-01-03,7,c\n")
    ch = datasets.read_channel(f)
    assert ch.name == "temp" and ch.decimals == 2
    np.testing.assert_array_equal(ch.exact_integers, [2150, -325, 700])


def test_named_column_and_bundled_recordings_agree():
    ch = datasets.read_channel(datasets.path("heartpy_ppg"), datasets.VALUE_COLUMNS["heartpy_ppg"][0])
    np.testing.assert_array_equal(ch.exact_integers, datasets.channels("heartpy_ppg")[0].exact_integers)


@pytest.mark.parametrize(
    "text, column, says",
    [
        ("a,b\n", None, "no data rows"),
        ("a,b\nx,y\n", None, "no column holds only numbers"),
        ("a,b\n1,2\n", "c", "no column 'c'"),
        ("a,b\n1,2\n3,nan\n", "b", "data row 2: 'nan' is not a number"),
        ("a,b\n1,2\n3,\n", "b", "data row 2"),
    ],
)
def test_bad_files_get_a_clear_error(tmp_path, text, column, says):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=says):
        datasets.read_channel(f, column)
