"""The command line's promises: no filter silently ignored, one meaning per exit status,
import errors by event id in line order, close-day --commit after a plain close-day."""

from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DEMO, git

from beancount_credits.cli import main
from beancount_credits.ledger import Ledger, load
from beancount_credits.reports import OPTION, REPORTS, USED_BY, Filters, ReportError, run

TO = datetime.date(2026, 11, 20)
HISTORY = Path(__file__).parent / "reports" / "history.beancount"

# A value of each filter that selects less than the whole table on the demo ledger.
NARROWING: dict[str, object] = {
    "segment": "no-such-segment",
    "commodity": "NO-SUCH-TYPE",
    "date_from": datetime.date(2026, 11, 15),
    "member": "nobody@example.com",
    "period": "week",
    "days": 400,
    "factor": Decimal(1),
    "search": "zzz",
}
# top needs three periods; failed-topups' two records are both in November.
FROM = {"top": datetime.date(2026, 9, 1)}


@pytest.fixture(scope="module")
def demo() -> Ledger:
    return load(DEMO)


def rows(ledger: Ledger, name: str, **filters: object) -> list[list[object]]:
    if name in ("members", "statement"):  # one user's tables
        filters.setdefault("user", "org-acme")
    table = run(name, ledger, Filters(date_to=TO, **filters))  # type: ignore[arg-type]
    return [list(row) for row in table.rows]


def test_every_filter_field_is_in_the_table_or_read_by_every_report() -> None:
    # Every filter but --user and --to (which every report reads) and the sort
    # options (checked against the columns) is in USED_BY.
    fields = {field.name for field in dataclasses.fields(Filters)}
    assert fields - set(USED_BY) == {"user", "date_to", "sort", "desc"}


@pytest.mark.parametrize("name", sorted(REPORTS))
@pytest.mark.parametrize("field", sorted(NARROWING))
def test_a_filter_is_read_or_refused(demo: Ledger, name: str, field: str) -> None:
    value = FROM.get(name, NARROWING[field]) if field == "date_from" else NARROWING[field]
    if name not in USED_BY[field]:
        with pytest.raises(ReportError, match=f"--{OPTION.get(field, field)} does not apply"):
            rows(demo, name, **{field: value})
        return
    # A report that takes the filter shows it: the rows change.
    assert rows(demo, name, **{field: value}) != rows(demo, name)


def test_the_cli_refuses_an_unused_filter_with_status_2() -> None:
    result = CliRunner().invoke(
        main, ["report", "balances", str(HISTORY), "--from", "2024-02-01", "--to", "2024-12-31"]
    )
    assert result.exit_code == 2
    assert "--from does not apply to report 'balances'" in result.output
    result = CliRunner().invoke(main, ["report", "balances", str(HISTORY), "--factor", "3"])
    assert result.exit_code == 2 and "--factor does not apply" in result.output
    result = CliRunner().invoke(main, ["report", "balances", str(HISTORY), "--desc"])
    assert result.exit_code == 2 and "--desc sorts by --sort FIELD" in result.output


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_exit_status_0_ok_1_findings_2_usage_or_input_error(ledger: Path, tmp_path: Path) -> None:
    end = ["--to", "2024-12-31"]
    assert invoke("report", "balances", str(ledger), *end)[0] == 0
    assert invoke("verify", str(ledger))[0] == 0
    # 2: usage errors (click's) and input errors alike.
    assert invoke("report", "monthly", str(ledger))[0] == 2  # unknown report
    assert invoke("report", "balances", str(ledger), "--user", "zoe", *end)[0] == 2
    assert invoke("report", "balances", str(tmp_path / "missing.beancount"))[0] == 2
    assert invoke("report", "balances", str(ledger), "--to", "someday")[0] == 2
    assert invoke("report", "balances", str(ledger), "--format", "docx")[0] == 2
    assert invoke("close-day", str(ledger), "--date", "2999-01-01")[0] == 2
    assert invoke("import", str(ledger), str(tmp_path / "none.csv"))[0] == 2
    not_ledger = tmp_path / "broken.beancount"
    not_ledger.write_text("2024-01-01 open Assets:Cash\n2024-01-02 * bad\n")
    assert invoke("report", "balances", str(not_ledger))[0] == 2
    # 1: verify's findings (an edit of a logged day).
    assert invoke("close-day", str(ledger), "--date", "2024-03-10", "--commit")[0] == 0
    transactions = ledger.parent / "transactions.beancount"
    transactions.write_text(transactions.read_text().replace("-15 CREDIT", "-16 CREDIT", 1))
    code, output = invoke("verify", str(ledger))
    assert code == 1, output
    assert "no longer hold" in output
    # ... while the report refuses the ledger: an input error.
    assert invoke("report", "balances", str(ledger), *end)[0] == 2


def test_report_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "out.csv"
    code, output = invoke(
        "report", "balances", str(HISTORY), "--to", "2024-12-31", "-o", str(target)
    )
    assert code == 2
    assert len(output.strip().splitlines()) == 1, output
    assert "no such folder" in output


def test_import_errors_name_the_event_in_line_order(tmp_path: Path) -> None:
    from test_importers import BASE

    root = tmp_path / "ledger"
    import shutil

    shutil.copytree(BASE, root)
    ledger = root / "main.beancount"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "type,id,timestamp,user,amount,session\n"
        "redeem,evt-a1,2024-03-02T10:00:00Z,carol,5000,s-1\n"  # overdraws (found late)
        "refund,evt-b2,2024-03-02T10:00:00Z,bob,1,\n"  # unknown type (found early)
        "purchase,evt-c3,2024-03-02T10:00:00Z,carol,x,\n"  # bad number
        "purchase,evt-ok,2024-03-02T10:00:00Z,carol,5,\n"
    )
    code, output = invoke("import", str(ledger), str(bad))
    assert code == 2
    listed = [
        line.strip() for line in output.splitlines() if "bad.csv:" in line and "event" in line
    ]
    assert [line.split("bad.csv:")[1][:2] for line in listed] == ["2:", "3:", "4:"], output
    assert "bad.csv:3: event 'evt-b2', user 'bob': type: unknown event type 'refund'" in output
    code, output = invoke("import", str(ledger), str(bad), "--skip-invalid")
    assert code == 0, output
    rejected = [
        line.strip() for line in output.splitlines() if line.strip().startswith("rejected ")
    ]
    assert [line.split("bad.csv:")[1][:2] for line in rejected] == ["2:", "3:", "4:"], output
    assert all("event 'evt-" in line for line in rejected)


def test_close_day_commit_takes_the_log_a_plain_close_day_wrote(ledger: Path) -> None:
    root = ledger.parent
    assert invoke("close-day", str(ledger), "--date", "2024-03-10")[0] == 0
    assert git(root, "status", "--porcelain") != ""
    code, output = invoke("close-day", str(ledger), "--date", "2024-03-10", "--commit")
    assert code == 0, output
    assert "committed" in output
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    assert "close-day 2024-03-10" in git(root, "log", "-1", "--format=%s")


def test_close_day_commit_leaves_a_hand_edit_of_the_main_file_and_says_so(ledger: Path) -> None:
    root = ledger.parent
    assert invoke("close-day", str(ledger), "--date", "2024-03-10")[0] == 0
    ledger.write_text(ledger.read_text() + "\n; a note by hand\n2024-01-01 commodity USD\n")
    code, output = invoke("close-day", str(ledger), "--date", "2024-03-10", "--commit")
    assert code == 0, output
    assert "not committed: main.beancount has other uncommitted changes" in output
    assert git(root, "status", "--porcelain", "--untracked-files=no").split() == [
        "M",
        "main.beancount",
    ]


def test_verbose_logs_diagnostics_on_stderr(ledger: Path) -> None:
    quiet = CliRunner().invoke(main, ["close-day", str(ledger), "--date", "2024-03-10"])
    assert quiet.exit_code == 0 and "bean-credits:" not in quiet.stderr
    loud = CliRunner().invoke(
        main, ["-v", "close-day", str(ledger), "--date", "2024-03-11", "--commit"]
    )
    assert loud.exit_code == 0, loud.output
    assert "bean-credits: loaded" in loud.stderr
    assert "bean-credits: committed" in loud.stderr
    assert "bean-credits:" not in loud.stdout


def test_a_failed_topup_from_events_keeps_its_credit_type_and_the_file_its_day_once(
    tmp_path: Path,
) -> None:
    import shutil

    from test_importers import BASE

    shutil.copytree(BASE, tmp_path / "ledger")
    ledger = tmp_path / "ledger" / "main.beancount"
    events = tmp_path / "2024-03-05-declined.jsonl"
    events.write_text(
        '{"type": "topup", "id": "t-9", "timestamp": "2024-03-05T11:00:00Z", "user": "bob", '
        '"amount": 20, "commodity": "SESSION", "status": "failed", "request": "req-9", '
        '"reason": "card declined"}\n'
    )
    code, output = invoke("import", str(ledger), str(events))
    assert code == 0, output
    # The batch file is named by its first day once, not twice.
    assert "wrote imports/2024-03-05-declined-" in output
    table = run("failed-topups", load(ledger), Filters(date_to=datetime.date(2024, 3, 31)))
    assert [row[3] for row in table.rows] == ["20 SESSION"]


def test_report_headers_name_the_filters_without_flags() -> None:
    # The PDF's and the text's header lines: no "desc: True".
    pairs = Filters(date_to=TO, sort="Balance", desc=True).describe()
    assert pairs == [("date to", str(TO)), ("sort", "Balance, descending")]
    assert Filters(sort="User ID").describe() == [("sort", "User ID, ascending")]


def on_a_terminal(*args: str) -> tuple[int, str, str]:
    """The command with stderr on a pseudo-terminal; what stdout and the terminal showed."""
    import os
    import pty
    import subprocess
    import sys

    main_fd, terminal = pty.openpty()
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "beancount_credits.cli", *args],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env={**env, "COLUMNS": "100"},
        )
        out, _ = process.communicate(timeout=120)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main_fd)
    return process.returncode, out.decode(), shown.decode(errors="replace")


def test_long_work_shows_progress_on_a_terminal_only(ledger: Path, tmp_path: Path) -> None:
    code, out, shown = on_a_terminal("close-day", str(ledger), "--date", "2024-03-10")
    assert code == 0, out + shown
    assert "close-day 2024-03-10" in shown and "checking and writing" in shown
    assert "loading the ledger" not in out  # the output stays the output
    target = tmp_path / "export"
    code, out, shown = on_a_terminal("export", "parquet", str(ledger), "-o", str(target))
    assert code == 0, out + shown
    assert "export parquet" in shown and "period " in shown
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type": "purchase", "id": "p-77", "timestamp": "2024-03-11T10:00:00Z", '
        '"user": "alice", "amount": 5}\n'
    )
    code, out, shown = on_a_terminal("import", str(ledger), str(events))
    assert code == 0, out + shown
    assert "reading the ledger" in shown and "checking and writing" in shown
    assert "1 new" in out and "planning" not in out
    # In a pipe (or with CI set), nothing but the output.
    piped = CliRunner().invoke(main, ["close-day", str(ledger), "--date", "2024-03-11"])
    assert piped.exit_code == 0
    assert "loading the ledger" not in piped.output and "[" not in piped.stderr
