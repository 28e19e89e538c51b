"""``shoprec.atomic.write_text_atomic``: whole replacements, no stray temporary files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoprec.atomic import write_text_atomic


def test_replaces_the_whole_file_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "record.json"
    assert write_text_atomic(path, '{"x": 1}\n') == path
    assert path.read_text() == '{"x": 1}\n'
    write_text_atomic(path, "é", durable=True)  # UTF-8 whatever the locale
    assert path.read_bytes() == "é".encode()
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json"]


def test_a_failed_write_keeps_the_old_content_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_text_atomic(path, "old")
    with pytest.raises(TypeError):
        write_text_atomic(path, None)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_temporary_is_hidden_and_named_after_the_process(tmp_path: Path,
                                                            monkeypatch) -> None:
    seen: list[str] = []
    real = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        seen.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_text_atomic(tmp_path / "r.json", "{}")
    assert seen == [f".r.json.tmp-{os.getpid()}"]  # never matched by a *.json glob
