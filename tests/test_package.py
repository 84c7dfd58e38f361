"""Installing and importing: the messages a user gets when fastconv is built or imported the
wrong way (an isolated pip build; the source folder without a compiled extension)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
    )


def test_import_from_a_source_folder_without_the_extension_says_so(tmp_path):
    source = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "fastconv", source / "fastconv", ignore=shutil.ignore_patterns("_C*", "__pycache__")
    )
    shutil.copy(ROOT / "setup.py", source / "setup.py")
    result = run_python(["-c", "import fastconv"], cwd=source, env={"PYTHONPATH": ""})
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("ImportError: fastconv was imported from its source folder")
    assert "has not been built" in message and "build_ext --inplace" in message
    assert "run Python from another folder" in message
    assert "circular import" not in result.stderr


def test_an_installed_package_without_the_extension_says_how_to_rebuild(tmp_path):
    shutil.copytree(
        ROOT / "fastconv",
        tmp_path / "fastconv",
        ignore=shutil.ignore_patterns("_C*", "__pycache__"),
    )
    result = run_python(["-c", "import fastconv"], cwd=tmp_path, env={"PYTHONPATH": ""})
    assert "fastconv's compiled extension (fastconv._C) is missing" in result.stderr
    assert "pip install --no-build-isolation" in result.stderr


def test_setup_without_torch_names_no_build_isolation(tmp_path):
    """What pip's isolated build environment gets (pyproject lists no torch): a message at once."""
    shadow = tmp_path / "shadow"
    (shadow / "torch").mkdir(parents=True)
    (shadow / "torch" / "__init__.py").write_text(
        "raise ImportError('no torch in this environment')\n"
    )
    result = run_python(
        [str(ROOT / "setup.py"), "--version"], cwd=tmp_path, env={"PYTHONPATH": str(shadow)}
    )
    assert result.returncode != 0
    assert "torch is not importable while building fastconv" in result.stderr
    assert "pip install --no-build-isolation ." in result.stderr


def test_pyproject_does_not_pull_torch_into_an_isolated_build():
    text = (ROOT / "pyproject.toml").read_text()
    build_system = text.split("[build-system]", 1)[1].split("\n[", 1)[0]
    requires = [line for line in build_system.splitlines() if line.startswith("requires")]
    assert requires and "torch" not in requires[0]
