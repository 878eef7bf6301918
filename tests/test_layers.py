"""The layer contracts of pyproject.toml ([tool.importlinter]): imports only point down, and no
package has an import cycle among its modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(capsys):
    pytest.importorskip("importlinter", reason="import-linter is part of the [test] extra")
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "BROKEN" not in out and "KEPT" in out
