"""The README's code runs as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def test_readme_example_runs_and_delivers_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(script), run_name="__main__")
    report = namespace["report"]
    report.check()
    assert report.ok
    assert dict(report.delivered) == {"all.jsonl": 2, "errors": 1, "misses": 1}
    assert [r.raw for r in namespace["errors"].records] == ["ERROR disk full"]
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 2
    assert "all.jsonl" in capsys.readouterr().out
