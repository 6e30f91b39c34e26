"""Packaging: models/ is found from the source checkout and from an installed wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from circuits.data import model_file, models_dir

ROOT = Path(__file__).resolve().parents[1]


def test_models_found_from_checkout():
    assert models_dir() == ROOT / "models"
    assert model_file("examples", "digits_mlp.onnx").is_file()


def test_models_env_override(tmp_path, monkeypatch):
    (tmp_path / "README.md").write_text("x")
    monkeypatch.setenv("KELVIN_MODELS", str(tmp_path))
    assert models_dir() == tmp_path


@pytest.mark.slow
def test_models_found_from_installed_wheel(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(ROOT)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("kelvin_analog-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("data/share/kelvin/models/examples/digits_mlp.onnx") for n in names)
    assert any(n.startswith("sim/cli.py") for n in names)
    def dev_install() -> int:
        return subprocess.run([sys.executable, "-m", "pip", "show", "kelvin-analog"], capture_output=True).returncode

    before = dev_install()
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip uninstalls the venv's own (editable) Kelvin first
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed",
                    "--prefix", str(prefix), str(wheel)], check=True, cwd=tmp_path)
    site = next(prefix.rglob("circuits/__init__.py")).parent.parent  # lib/pythonX.Y/{site,dist}-packages
    code = ("import circuits, circuits.data as d; print(circuits.__file__); "
            "print(d.model_file('examples', 'digits_mlp.onnx'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    pkg, found = out.stdout.strip().splitlines()
    assert pkg.startswith(str(site))
    assert found.startswith(str(prefix)) and found.endswith("digits_mlp.onnx")
    assert dev_install() == before  # a development install (make test's) is left in place
