"""The bundled data's README describes only files that are shipped beside it."""

from __future__ import annotations

import re
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "botctl" / "data"


def test_every_data_file_the_readme_names_is_shipped():
    named = set(re.findall(r"`(etf_[a-z_]+\.[a-z.]+)`", (DATA / "README.md").read_text()))
    assert named, "the README names the bundled file"
    assert named <= {p.name for p in DATA.iterdir()}
