"""models/ and recipes/ work from an installed wheel, not only from a checkout."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_models_and_recipes_and_imports(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("cometkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "comet_models/runtime.py" in names and "comet_models/inject.py" in names
    assert "comet_cli/cli.py" in names
    assert "comet_models/shift_prose.txt" in names  # `--reads N` puts it before the document
    assert any(n.startswith("comet_recipes/") and n.endswith(".yaml") for n in names) or \
        not list((ROOT / "recipes").glob("*.yaml"))
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import comet_models, comet_recipes, comet_cli.cli; "
            "from comet_models.inject import FAMILIES; "
            "print(comet_models.__file__); print(sorted(p.name for p in comet_recipes.RECIPES_DIR.glob('*.yaml')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
                         capture_output=True, text=True, check=True).stdout
    assert str(target) in out.splitlines()[0]
    shipped = sorted(p.name for p in (ROOT / "recipes").glob("*.yaml"))
    assert out.splitlines()[1] == repr(shipped)
