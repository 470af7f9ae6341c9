"""`esafety roster import`: exit codes, the summary, every problem on its own line."""

from __future__ import annotations

import codecs
from pathlib import Path

from esafety.installation import Installation
from tests.directory.roster_data import SIMS_HEADER, mis_text, sims_rows, small_school
from tests.directory.roster_support import counts, new_school


def test_import_prints_a_summary(inst: Installation, cli, tmp_path: Path) -> None:
    new_school(inst)
    path = small_school().write(tmp_path / "roster")
    result = cli("roster", "import", str(path), "--school", "westpark")
    assert result.code == 0, result.err
    assert (
        "Imported oneroster roster (bulk) into westpark: 10 added, 0 updated, 0 left, 0 unchanged."
        in result.out
    )
    assert "Classes: 3 added" in result.out
    assert result.err == ""  # no progress bar when not on a terminal

    again = cli("roster", "import", str(path), "--school", "westpark")
    assert again.code == 0
    assert "0 added, 0 updated, 0 left, 10 unchanged." in again.out


def test_problems_exit_non_zero_and_write_nothing(inst: Installation, cli, tmp_path: Path) -> None:
    new_school(inst)
    roster = small_school()
    roster.row("users", "a1")["role"] = "proctor"
    roster.row("demographics", "p1")["birthDate"] = "04/05/2016"
    path = roster.write(tmp_path / "roster")
    before = counts(inst)

    result = cli("roster", "import", str(path), "--school", "westpark")

    assert result.code == 1
    assert counts(inst) == before
    lines = result.err.splitlines()
    assert lines[0] == f"2 problems in {path}; nothing was imported:"
    assert lines[1].startswith(
        f"users.csv:{roster.line_of('users', 'a1')}: role: unknown role 'proctor' — "
    )
    assert lines[2].startswith(
        f"demographics.csv:{roster.line_of('demographics', 'p1')}: birthDate: '04/05/2016' is not a date — "
    )
    assert "Traceback" not in result.err
    assert result.out == ""


def test_unknown_school(inst: Installation, cli, tmp_path: Path) -> None:
    new_school(inst)
    result = cli(
        "roster", "import", str(small_school().write(tmp_path / "r")), "--school", "nowhere"
    )
    assert result.code == 1
    assert "--school: unknown school 'nowhere' — use one of: westpark" in result.err


def test_a_path_that_does_not_exist(inst: Installation, cli, tmp_path: Path) -> None:
    new_school(inst)
    result = cli("roster", "import", str(tmp_path / "missing"), "--school", "westpark")
    assert result.code == 1
    assert "no such file or folder" in result.err


def test_dry_run_writes_nothing(inst: Installation, cli, tmp_path: Path) -> None:
    new_school(inst)
    before = counts(inst)
    result = cli(
        "roster",
        "import",
        str(small_school().write(tmp_path / "r")),
        "--school",
        "westpark",
        "--dry-run",
    )
    assert result.code == 0, result.err
    assert "Would import oneroster roster (bulk) into westpark: 10 added" in result.out
    assert "Dry run: nothing was written." in result.out
    assert counts(inst) == before


def test_allow_bom(inst: Installation, cli, tmp_path: Path) -> None:
    new_school(inst)
    path = tmp_path / "pupils.csv"
    path.write_bytes(codecs.BOM_UTF8 + mis_text(SIMS_HEADER, sims_rows()).encode())
    refused = cli("roster", "import", str(path), "--school", "westpark")
    assert refused.code == 1
    assert (
        "pupils.csv:1: the file starts with a byte-order mark (BOM) — save it as UTF-8 without a BOM, or run again with --allow-bom"
        in refused.err
    )
    accepted = cli("roster", "import", str(path), "--school", "westpark", "--allow-bom")
    assert accepted.code == 0, accepted.err
    assert "Imported mis roster (bulk) into westpark: 6 added" in accepted.out


def test_format_is_detected_or_given(inst: Installation, cli, tmp_path: Path) -> None:
    new_school(inst)
    folder = small_school().write(tmp_path / "r")
    wrong = cli("roster", "import", str(folder), "--school", "westpark", "--format", "mis")
    assert wrong.code == 1 and "an MIS export is one .csv file" in wrong.err
    unknown = cli("roster", "import", str(folder), "--school", "westpark", "--format", "sims")
    assert unknown.code == 2 and "unknown roster format 'sims'" in unknown.err


def test_delta_flag(inst: Installation, cli, tmp_path: Path) -> None:
    from tests.directory.roster_data import OneRoster

    new_school(inst)
    assert (
        cli(
            "roster", "import", str(small_school().write(tmp_path / "b")), "--school", "westpark"
        ).code
        == 0
    )
    delta = OneRoster(delta=True)
    delta.add(
        "users",
        sourcedId="p3",
        status="tobedeleted",
        role="student",
        givenName="Grace",
        familyName="Hopper",
    )
    path = delta.write(tmp_path / "d")
    without = cli("roster", "import", str(path), "--school", "westpark")
    assert (
        without.code == 1
        and "file.users is 'delta' but this is a bulk import — run again with --delta"
        in without.err
    )
    result = cli("roster", "import", str(path), "--school", "westpark", "--delta")
    assert result.code == 0, result.err
    assert "(delta) into westpark: 0 added, 0 updated, 1 left" in result.out


def test_a_progress_bar_on_a_terminal_for_large_rosters(inst: Installation, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from esafety.directory.roster.cli import _ProgressBar
    from esafety.directory.roster.service import import_roster
    from tests.directory.roster_data import big_oneroster

    new_school(inst)
    new_school(inst, "tiny", "Tiny School")
    shown = io.StringIO()
    bar = _ProgressBar(Console(file=shown, force_terminal=True, width=100))
    import_roster(inst, big_oneroster(400).write(tmp_path / "big"), "westpark", progress=bar)
    bar.close()
    assert "Writing" in shown.getvalue()

    quiet = io.StringIO()
    bar = _ProgressBar(Console(file=quiet, force_terminal=True, width=100))
    import_roster(inst, small_school().write(tmp_path / "small"), "tiny", progress=bar)
    bar.close()
    assert quiet.getvalue() == ""  # a small roster is quick: no bar
