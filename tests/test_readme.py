"""The README's Python block runs as it stands, in an empty folder."""

from __future__ import annotations

import re

from conftest import ROOT


def _python_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def test_the_readme_python_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_block(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "did you mean 'learning_rate'" in out
    assert (tmp_path / "results" / "adhoc" / "leaderboard-tiktok.md").is_file()
    assert (tmp_path / "results" / "default" / "tiktok" / "BPR").is_dir()
    assert not (tmp_path / "results" / "default" / "leaderboard-tiktok.md").exists()  # a part
