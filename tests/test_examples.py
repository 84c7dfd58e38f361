"""examples/train_digits.py: runs as the README says, and fastconv's LeNet-5 learns the digits as
well as torch.nn's."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
ROOT = Path(__file__).resolve().parents[1]


def test_digits_example_runs(tmp_path):
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [
            sys.executable,
            "examples/train_digits.py",
            "--epochs",
            "1",
            "--limit",
            "200",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "test accuracy: fastconv.nn LeNet-5" in result.stdout
        and "torch.nn LeNet-5" in result.stdout
    )
    assert "at the digits: predicted" in result.stdout
    for png in ("loss_curves.png", "class_map.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_digits_accuracy_matches_torch(tmp_path):
    import train_digits

    accuracy = train_digits.main(["--out", str(tmp_path)])  # the README's run
    assert accuracy["fastconv"] > 95
    assert abs(accuracy["fastconv"] - accuracy["torch"]) <= 1
