"""Contract: pytest setup for tests/python. Finds the build directory (env
REMAT_BUILD_DIR, default <repo>/build), puts its python/ folder first on sys.path
so ``import remat`` picks the freshly built package, and offers the fixtures
``build_dir`` (a pathlib.Path) and ``mlp`` (the small model every test shares)."""

import os
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD_DIR = pathlib.Path(os.environ.get("REMAT_BUILD_DIR", REPO / "build")).resolve()

_package_dir = BUILD_DIR / "python"
if _package_dir.is_dir() and str(_package_dir) not in sys.path:
    sys.path.insert(0, str(_package_dir))

MLP_SPEC = "mlp:layers=8,width=16,batch=4"


@pytest.fixture(scope="session")
def build_dir():
    """The CMake build directory the tests run against."""
    return BUILD_DIR


@pytest.fixture(scope="session")
def mlp():
    """The small MLP of the tests (one tape shared by all of them)."""
    import remat

    return remat.build_model(MLP_SPEC)
