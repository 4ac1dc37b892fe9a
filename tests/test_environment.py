"""environment.yml (conda) and pyproject.toml must describe the same dependencies."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _norm(spec: str) -> str:
    return spec.replace(" ", "").lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(s) for s in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        wanted |= {_norm(s) for s in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    have = {_norm(s) for s in pip_section if not s.startswith("-e")}
    assert have == wanted, f"only in environment.yml: {sorted(have - wanted)}; only in pyproject: {sorted(wanted - have)}"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.startswith("python=3.1")


def test_torch_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps
