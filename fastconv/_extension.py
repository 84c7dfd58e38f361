"""Loads the compiled extension fastconv._C and checks it matches the torch it runs under."""

import os
from importlib.machinery import EXTENSION_SUFFIXES

import torch

REBUILD_HINT = (
    "Rebuild fastconv against the installed torch: from the fastconv source folder run "
    "`pip install --no-build-isolation --no-deps --force-reinstall .` "
    "(or `pip install --no-build-isolation --no-deps -e .` for a development install)."
)
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def check_torch_version(built: str, running: str) -> None:
    """Raises ImportError unless the extension was built against the running torch."""
    if built != running:
        raise ImportError(
            f"fastconv was built against torch {built}, but torch {running} is installed. "
            + REBUILD_HINT
        )


def missing_extension_message(package_dir: str) -> str:
    """Why fastconv._C is absent, and what to do. The usual cause: Python found the fastconv
    folder of a source checkout (the current folder comes first on sys.path) rather than the
    installed package."""
    source_root = os.path.dirname(package_dir)
    if os.path.exists(os.path.join(source_root, "setup.py")):
        return (
            f"fastconv was imported from its source folder {package_dir}, where the compiled "
            "extension fastconv._C has not been built. Either build it there "
            "(`python setup.py build_ext --inplace`, or `pip install --no-build-isolation -e .`), "
            f"or run Python from another folder than {source_root} so that it imports the "
            "installed fastconv (`pip install --no-build-isolation .` installs it)."
        )
    return (
        f"fastconv's compiled extension (fastconv._C) is missing from {package_dir}: the "
        "package was installed without it. " + REBUILD_HINT
    )


# Checked before importing: a missing module would otherwise surface as a confusing "partially
# initialized module (most likely due to a circular import)" error. The file is looked for in this
# package's own folder: an editable install's import hook would otherwise hand this folder the
# extension of the checkout it was installed from.
if not any(
    os.path.exists(os.path.join(PACKAGE_DIR, "_C" + suffix)) for suffix in EXTENSION_SUFFIXES
):
    raise ImportError(missing_extension_message(PACKAGE_DIR))

try:
    from . import _C
except ImportError as error:  # an ABI mismatch shows up as undefined symbols
    raise ImportError(
        f"fastconv's compiled extension (fastconv._C) failed to load under torch "
        f"{torch.__version__}: {error}. " + REBUILD_HINT
    ) from error

check_torch_version(_C.build_info()["torch_version"], torch.__version__)

ops = torch.ops.fastconv  # the ops _C registered: conv2d, max_pool2d_with_indices, ...


def build_info() -> dict:
    """How fastconv was built: torch_version, cuda (bool), cuda_version, cuda_archs, openmp."""
    return dict(_C.build_info())
