"""The README's commands and quickstart work as written."""

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_install_and_test_commands():
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    first, second = blocks[0].strip(), blocks[1].strip()
    assert "pip install" in first and first.endswith("gde demo")
    assert "pip install" in second and ".[test]" in second and second.endswith("pytest")
    # CI runs the second block verbatim
    ci = (ROOT / ".ci" / "run").read_text()
    assert "sed -n 2p" in ci and 'eval "${test_cmd}"' in ci


def test_quickstart_runs_as_written(tmp_path, monkeypatch):
    code = re.search(r"## Quickstart\n\n```python\n(.*?)```", README, flags=re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    # the quickstart uses the default, converged training; here a few steps stand in
    assert "model.train()" in code
    code = code.replace("model.train()", "model.train(max_steps=60, enable_progress_bar=False)")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README-quickstart", "exec"), namespace)
    assert (tmp_path / "sets.png").exists()
    emb, truth = namespace["emb"], namespace["truth"]
    assert emb.shape == (40, 16)
    assert namespace["gde"].metrics.distance_spearman(emb, truth) > 0.5
