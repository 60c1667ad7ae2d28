"""The tercap command: exit codes, messages, and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tercap.cli import main


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_validate_ok(tiny, capsys):
    code, text = run(capsys, "validate", str(tiny.path))
    assert code == 0
    assert "is valid: 4 accounts, 3 reps" in text


def test_validate_lists_every_error_and_exits_2(tiny, capsys):
    tiny.edit("reps.csv", "Bob Park,41.88,-87.63,Central,smb,1", "Bob Park,95,-87.63,Central,smb,x")
    code, text = run(capsys, "validate", str(tiny.path))
    assert code == 2
    assert "2 error(s)" in text
    assert "reps.csv, row 3, column lat" in text
    assert "reps.csv, row 3, column experience_years" in text
    assert "Traceback" not in text


def test_unsafe_yaml_exits_2(tiny, capsys):
    tiny.write("scenario.yaml", "period: !!python/object/apply:os.getcwd []\n")
    code, text = run(capsys, "validate", str(tiny.path))
    assert code == 2 and "refused YAML tag" in text and "Traceback" not in text


def test_missing_file_exits_2(tmp_path, capsys):
    code, text = run(capsys, "info", str(tmp_path / "nope.yaml"))
    assert code == 2 and "file not found" in text


def test_info_shows_segments_regions_and_warnings(tiny, capsys):
    tiny.edit("accounts.csv", "smb,1000,", "smb,0,")
    code, text = run(capsys, "info", str(tiny.path))
    assert code == 0
    for words in ("By segment", "By region", "enterprise", "smb", "total", "Central", "zero potential",
                  "open opportunities", "historical win rate"):
        assert words in text, words


def test_usage_error_exits_2(capsys):
    code, text = run(capsys, "info", "--bogus")
    assert code == 2 and "No such option" in text


def test_help_and_version(capsys):
    code, text = run(capsys, "--help")
    assert code == 0 and "validate" in text and "generate" in text and "info" in text
    code, text = run(capsys, "--version")
    assert code == 0 and text.startswith("tercap ")


def test_internal_error_exits_1_without_traceback(tiny, capsys, monkeypatch):
    import tercap

    def broken(path):
        raise RuntimeError("boom")

    monkeypatch.setattr(tercap, "load", broken)
    monkeypatch.delenv("TERCAP_DEBUG", raising=False)
    code, text = run(capsys, "validate", str(tiny.path))
    assert code == 1 and "internal error" in text and "boom" in text and "Traceback" not in text


def test_console_script_end_to_end(tiny):
    """The installed command, in a fresh process: bad input gives exit 2 and no traceback."""
    tiny.edit("accounts.csv", "complex,R2,false", "complex,R7,false")
    env = {**os.environ, "TERCAP_DEBUG": ""}
    result = subprocess.run([sys.executable, "-m", "tercap.cli", "validate", str(tiny.path)],
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 2
    assert "accounts.csv, row 3, column current_owner" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("fmt", ["xlsx"])
def test_generate_rejects_unknown_format(tmp_path, capsys, fmt):
    code, text = run(capsys, "generate", "--format", fmt, str(tmp_path / "out"))
    assert code == 2 and "csv or parquet" in text


def test_bad_yaml_values_exit_2_as_scenario_errors(tiny, capsys):
    tiny.edit("scenario.yaml", "start: 2027-01-01", "start: 2027-02-30")
    code, text = run(capsys, "validate", str(tiny.path))
    assert code == 2 and "line 2" in text and "not a valid date: 2027-02-30" in text and "Traceback" not in text


def test_validate_counts_every_error_not_the_lines_shown(tiny, capsys):
    rows = "".join(f"B{i},Bulk {i},40.0,-75.0,,retail,smb,-5,,,,\n" for i in range(500))
    tiny.write("accounts.csv", tiny.files["accounts.csv"] + rows)
    code, text = run(capsys, "validate", str(tiny.path))
    assert code == 2 and "500 error(s)" in text
