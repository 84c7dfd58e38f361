"""Loads the compiled extension fastconv._C and checks it matches the torch it runs under."""

import torch

REBUILD_HINT = (
    "Rebuild fastconv against the installed torch: from the fastconv source folder run "
    "`pip install --no-build-isolation --no-deps --force-reinstall .` "
    "(or `pip install --no-build-isolation --no-deps -e .` for a development install)."
)


def check_torch_version(built: str, running: str) -> None:
    """Raises ImportError unless the extension was built against the running torch."""
    if built != running:
        raise ImportError(
            f"fastconv was built against torch {built}, but torch {running} is installed. "
            + REBUILD_HINT
        )


try:
    from . import _C
except ImportError as error:  # an ABI mismatch shows up as undefined symbols
    raise ImportError(
        f"fastconv's compiled extension (fastconv._C) failed to load under torch "
        f"{torch.__version__}: {error}. " + REBUILD_HINT
    ) from error

check_torch_version(_C.build_info()["torch_version"], torch.__version__)


def build_info() -> dict:
    """How fastconv was built: torch_version, cuda (bool), cuda_version, cuda_archs, openmp."""
    return dict(_C.build_info())
