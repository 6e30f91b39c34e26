"""Issue 12: kelvin fit writes its families as a set, and a manifest without `kind` is one clear line."""

from __future__ import annotations

import json

import pytest

from sim.cli import main

pytestmark = pytest.mark.ngspice


@pytest.fixture(scope="module")
def char(tmp_path_factory):
    data = tmp_path_factory.mktemp("char")
    assert main(["characterize", "opamp.rectifier", "opamp.summer", "-o", str(data), "--instances", "2",
                 "--points", "16", "-q"]) == 0
    return data


def test_manifest_without_kind_writes_no_fit(char, tmp_path, capsys):
    manifest = char / "opamp_summer" / "manifest.json"
    original = manifest.read_text()
    doc = json.loads(original)
    del doc["kind"]
    manifest.write_text(json.dumps(doc))
    try:
        capsys.readouterr()
        assert main(["fit", str(char), "-o", str(tmp_path / "fits"), "-q"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "manifest.json" in err and "'kind'" in err, err
        assert "internal error" not in err
        assert not (tmp_path / "fits").exists() or not list((tmp_path / "fits").iterdir())  # no partial set
    finally:
        manifest.write_text(original)
    assert main(["fit", str(char), "-o", str(tmp_path / "fits"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "fits").glob("*.json")) == ["kelvin.json", "rectifier.json", "summer.json"]
