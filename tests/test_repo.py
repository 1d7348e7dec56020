"""The repository keeps its promises: ruff clean, README's commands and example work."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    res = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    res = subprocess.run([ruff, "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_readme_library_example_runs():
    block = re.search(r"## Library\s+```python\n(.*?)```", README, re.S).group(1)
    res = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert res.returncode == 0, res.stderr
    # The comments in the example state the numbers; they must be what it prints.
    assert "25557032 4089184256 50" in res.stdout
    assert "427x427 (stride 32x32, padding 213x213)" in res.stdout


def test_ci_runs_readme_test_command():
    res = subprocess.run(
        [
            "bash",
            "-c",
            "awk '/<!-- test-command/ {found=1; next} found && /^```/ "
            "{if (inblock) exit; inblock=1; next} inblock {print; exit}' README.md",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    cmd = res.stdout.strip()
    assert cmd.endswith("python -m pytest") and "requirements-dev.txt" in cmd
    assert "awk '/<!-- test-command/" in (ROOT / ".ci" / "run").read_text()


def test_requirements_pin_cpu_torch():
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text()


def test_missing_tool_skips_locally_and_fails_in_ci(monkeypatch):
    import conftest

    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        conftest.need("/nonexistent/chromium", "browser tests")
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        conftest.need("/nonexistent/chromium", "browser tests")
    assert conftest.need(sys.executable, "python") == sys.executable


def test_readme_spec_example_builds():
    import cnnviz
    from cnnviz import spec

    text = re.search(r"## Model specs\s+```yaml\n(.*?)```", README, re.S).group(1)
    model = spec.build(text)
    a = cnnviz.analyze(model, model.default_input_size)
    # conv 16*3*9+16, bn 2*16, conv 16*16*9+16, bn 2*16, linear 16*10+10
    assert a.total_params == (16 * 27 + 16) + 32 + (16 * 144 + 16) + 32 + (160 + 10)


def test_readme_timing_and_erf_example_runs():
    lib = re.search(r"## Library\s+```python\n(.*?)```", README, re.S).group(1)
    more = re.search(
        r"### Timing and effective receptive fields from Python\s+```python\n(.*?)```", README, re.S
    ).group(1)
    res = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", lib + more],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    # resnet20 layer2: stem 3, layer1 six 3x3 convs +12 = 15, then six more at stride 2:
    # +2 (the strided conv) + 5*4 = 37
    assert "(37, 37)" in res.stdout


def test_readme_register_rule_example_runs():
    block = re.search(r"### Notebooks.*?```python\n(.*?)```", README, re.S).group(1)
    res = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert res.returncode == 0, res.stderr
    # the comments state what it prints: the op on the fallback, then its rule's 3x3 field
    assert res.stdout.splitlines() == ["scale", "3x3 (stride 1x1, padding 0x0)"]


def test_readme_training_and_graph_example_runs():
    block = re.search(r"### Training memory.*?```python\n(.*?)```", README, re.S).group(1)
    res = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0, res.stderr
    # every print's comment states what it prints
    assert res.stdout.splitlines() == [
        "1.97",
        "True 293",
        "['features.14', 'features.15', 'features.16']",
        "((212, 212), (212, 212))",
        "(435, 435) (11, 11) probably unproductive",
    ]
