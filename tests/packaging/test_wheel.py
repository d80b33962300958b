"""The built wheel stands alone: installed in a fresh virtualenv, run from a folder with no checkout
beside it, its commands find everything they need (the spot traces included) inside the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the elasticft wheel; its dependencies come from the test's own
    environment through a path entry (no download), which puts them after the venv's own packages and
    does not run the test environment's editable-install hooks, so `elasticft` is the wheel's copy."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(root / "dist"), str(REPO)],
                   check=True, capture_output=True)
    wheel = next((root / "dist").glob("elasticft-*.whl"))
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    env_python = env_dir / "bin" / "python"
    site_dir = subprocess.run([str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
    Path(site_dir, "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env_python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    return env_dir


def run_installed(env_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(env_dir / "bin" / "elasticft"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_installed_package_is_the_wheel_and_carries_the_spot_traces(installed_wheel: Path, tmp_path: Path) -> None:
    probe = ("import elasticft, elasticft.sim.trace as t; print(elasticft.__file__); "
             "print(len(list(t.SPOT_TRACES_DIR.rglob('*.json'))))")
    result = subprocess.run([str(installed_wheel / "bin" / "python"), "-c", probe], cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    module_file, trace_count = result.stdout.split()
    assert Path(module_file).is_relative_to(installed_wheel)
    assert int(trace_count) == len(list((REPO / "operator/elasticft/data/spot-traces").rglob("*.json")))


def test_installed_wheel_validates_prints_the_crd_and_plans_a_job(installed_wheel: Path, tmp_path: Path) -> None:
    job = shutil.copy(REPO / "examples" / "finetunejob.yaml", tmp_path / "job.yaml")

    validated = run_installed(installed_wheel, tmp_path, "validate", str(job))
    crd = run_installed(installed_wheel, tmp_path, "crd")
    plan = run_installed(installed_wheel, tmp_path, "plan", str(job), "--starts", "6")

    assert validated.returncode == 0, validated.stderr
    assert crd.returncode == 0 and "kind: CustomResourceDefinition" in crd.stdout, crd.stderr
    assert plan.returncode == 0, plan.stderr
    assert "us-west-2a_v100_1" in plan.stdout and "Pareto frontier" in plan.stdout
