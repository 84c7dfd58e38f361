"""Hostile arguments (issue 13) never crash, hang or answer wrongly: each case of
tests/hostile_cases.py raises what torch raises (type and message) or returns what torch returns,
or, where torch's behaviour is a bug, what the case documents instead.

The cases run in worker processes with a timeout per case, so a crash or a hang fails its case,
not the run. One module-scoped run answers every selected case; each test then reports its own.
"""

import pytest

import hostile_cases

NAMES = list(hostile_cases.CASES)
# The cases of known defects fail until the defect is fixed, and then must be unmarked.
PARAMS = [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=case.defect))
    if case.defect
    else name
    for name, case in hostile_cases.CASES.items()
]


@pytest.fixture(scope="module")
def verdicts(request):
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is not None
        and item.module.__name__ == __name__
        and hasattr(item, "callspec")
    ]
    return hostile_cases.run_cases(selected or NAMES)


@pytest.mark.parametrize("name", PARAMS)
def test_hostile_case(name, verdicts):
    verdict = verdicts[name]
    assert verdict is None, f"{name}: {verdict}"


def test_table_covers_every_op_and_argument():
    # The table is what this file tests: a case lost from it is a lost check.
    names = " ".join(NAMES)
    for op in ("conv", "pool", "unpool"):
        assert sum(n.startswith(op + " ") for n in NAMES) >= 40, op
    # The ops of fastconv.functional with tables of their own (hostile_cases_conv.py and
    # hostile_cases_pool.py), each with its arguments' huge and negative values.
    for op in hostile_cases.FUNCTIONS[1:] + ("max_unpool1d",):
        if op != "max_pool2d":
            assert sum(n.startswith(op + " ") for n in NAMES) >= 80, op
            for label in ("2**63-1", "-2**63", "2**31", "-1"):
                assert any(n.startswith(op + " ") and f"={label}" in n for n in NAMES), (op, label)
    for arg in ("stride", "padding", "dilation", "kernel_size", "groups", "output_size"):
        for label in ("2**63-1", "-2**63", "2**31", "-1"):
            assert f"{arg}={label}" in names or f"{arg}=({label}" in names, (arg, label)


def test_documented_differences_say_why():
    for case in hostile_cases.CASES.values():
        assert case.expect is None or len(case.why) > 20, case.name
        assert not case.defect or len(case.defect) > 20, case.name


def test_harness_reports_a_crash_and_a_hang():
    # The harness itself: a case that kills its worker, or never answers, fails alone, and the
    # cases after it still run in a fresh worker.
    verdicts = hostile_cases.run_cases(
        ["__crash__", "conv stride 1.5", "__hang__", "pool stride 1.5"], case_timeout=5.0
    )
    assert verdicts["__crash__"].startswith("crash:"), verdicts
    assert verdicts["__hang__"].startswith("hang:"), verdicts
    assert "conv stride 1.5" in verdicts and "pool stride 1.5" in verdicts
