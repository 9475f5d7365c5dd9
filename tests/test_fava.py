"""The Credit Balance History page through Fava's own app (Flask test client).

The demo ledger is loaded once by Fava with the extension; every figure the
endpoints return is checked against the reports and the grant engine run on an
independent load of the same ledger (``ledger.load``).
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import time_machine
from click.testing import CliRunner
from conftest import DEMO

from beancount_credits import engine, exports
from beancount_credits.cli import main
from beancount_credits.engine import settings
from beancount_credits.fava import server
from beancount_credits.jobs import alerts
from beancount_credits.ledger import Ledger, load
from beancount_credits.reports import REPORTS, Filters
from beancount_credits.reports.table import format_cell

TODAY = datetime.date(2026, 11, 22)  # two days after the demo's last day
PAGE = "/credits-demo/extension/CreditBalanceHistory/"


@pytest.fixture(scope="module")
def app() -> Any:
    with time_machine.travel(datetime.datetime(2026, 11, 22, 12), tick=False):
        fava_app, path = server.make_app(DEMO)
    assert path == PAGE
    return fava_app


@pytest.fixture
def client(app: Any) -> Any:
    with time_machine.travel(datetime.datetime(2026, 11, 22, 12), tick=False):
        yield app.test_client()


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return load(DEMO)


def get(client: Any, endpoint: str, **params: str) -> Any:
    response = client.get(PAGE + endpoint, query_string=params)
    assert response.status_code == 200, response.data
    return response.get_json()


def rows(table: dict) -> list[dict[str, str | None]]:
    names = [column["name"] for column in table["columns"]]
    return [dict(zip(names, row, strict=True)) for row in table["rows"]]


def statement_totals(ledger: Ledger, user_id: str, begin: str | None, end: str) -> dict:
    """Earned / redeemed / expired per credit type from the statement report."""
    filters = Filters(
        user=user_id,
        date_from=None if begin is None else datetime.date.fromisoformat(begin),
        date_to=datetime.date.fromisoformat(end),
    )
    table = REPORTS["statement"](ledger, filters)
    names = [column.name for column in table.columns]
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in table.rows:
        line = dict(zip(names, row, strict=True))
        if line["Description"] == "Opening balance":
            continue
        currency = line.get("Credit type") or ""
        for name in ("Earned", "Redeemed", "Expired"):
            totals[currency][name] += line[name] or Decimal(0)
    return totals


def test_page_and_script_are_served(client: Any) -> None:
    html = client.get(PAGE).get_data(as_text=True)
    assert "<title>Credit Balance History - Credits demo</title>" in html
    for region in ('id="cbh-users"', 'id="cbh-alerts"', 'id="cbh-chart"', 'data-format="xlsx"'):
        assert region in html
    script = client.get("/credits-demo/extension_js_module/CreditBalanceHistory.js")
    assert script.status_code == 200
    assert b"onExtensionPageLoad" in script.data


def test_default_page_is_the_credits_page(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.location.endswith(PAGE)


def test_all_users_match_the_reports(client: Any, ledger: Ledger) -> None:
    answer = get(client, "users")
    assert answer["as_of"] == str(TODAY)
    assert answer["segments"] == ["enterprise", "pro", "starter"]
    assert answer["credit_types"] == ["CREDIT", "SESSION"]
    table = rows(answer["table"])
    assert {row["User ID"] for row in table} == set(ledger.users)
    balances = REPORTS["balances"](ledger, Filters(date_to=TODAY))
    currencies = [column.name for column in balances.columns[2:]]
    expected = {
        (row[0], currency): value
        for row in balances.rows
        for currency, value in zip(currencies, row[2:], strict=True)
    }
    wallets = ledger.grants.wallets
    for row in table:
        user = ledger.users[row["User ID"]]
        balance = Decimal(row["Balance"])
        assert balance == expected[row["User ID"], row["Credit type"]], row
        wallet = wallets.get((user.account, row["Credit type"]))
        assert balance == (wallet.balance if wallet else 0), row
        assert row["Segment"] == user.segment
    # The period is the whole history: the period columns add up to the statement.
    for user_id in ("org-acme", "ingrid_rossi", "chloe_bello"):
        totals = statement_totals(ledger, user_id, None, str(TODAY))
        for row in (row for row in table if row["User ID"] == user_id):
            by_type = totals.get(row["Credit type"]) or totals[""]
            for name in ("Earned", "Redeemed", "Expired"):
                assert Decimal(row[name]) == by_type[name], (user_id, name)


def test_time_filter_sets_the_period(client: Any, ledger: Ledger) -> None:
    answer = get(client, "users", time="2026-10")
    assert answer["as_of"] == "2026-10-31"
    assert answer["period"] == "2026-10-01 to 2026-10-31, balances as of 2026-10-31"
    table = rows(answer["table"])
    acme = next(row for row in table if row["User ID"] == "org-acme")
    totals = statement_totals(ledger, "org-acme", "2026-10-01", "2026-10-31")[""]
    assert Decimal(acme["Redeemed"]) == totals["Redeemed"] > 0
    assert Decimal(acme["Earned"]) == totals["Earned"]
    balances = REPORTS["balances"](
        ledger, Filters(user="org-acme", date_to=datetime.date(2026, 10, 31))
    )
    assert Decimal(acme["Balance"]) == next(iter(balances.rows))[2]


def test_account_and_tag_filters_narrow_the_activity(client: Any, ledger: Ledger) -> None:
    account = ledger.users["org-acme"].account
    table = rows(get(client, "users", account=account)["table"])
    assert [row["User ID"] for row in table] == ["org-acme"]
    expired = rows(get(client, "users", filter="#expired")["table"])
    assert expired, "the demo has expiries"
    assert all(row["Earned"] == "0" and row["Redeemed"] == "0" for row in expired)
    # Every user listed had an expiry (in one of their credit types at least).
    with_expiry = {row["User ID"] for row in expired if Decimal(row["Expired"]) > 0}
    assert with_expiry == {row["User ID"] for row in expired}
    breakage = sum(
        -posting.units.number
        for entry in ledger.entries
        if engine.EXPIRED_TAG in getattr(entry, "tags", ())
        for posting in entry.postings
        if ledger.config.is_user_account(posting.account) and entry.date <= TODAY
    )
    assert sum(Decimal(row["Expired"]) for row in expired) == breakage


def test_server_side_view_matches_the_page_controls(client: Any) -> None:
    table = rows(get(client, "users", segment="pro", sort="Balance", desc="1")["table"])
    assert {row["Segment"] for row in table} == {"pro"}
    numbers = [Decimal(row["Balance"]) for row in table]
    assert numbers == sorted(numbers, reverse=True)
    found = rows(get(client, "users", q="ORG-")["table"])
    assert sorted(row["User ID"] for row in found) == ["org-acme", "org-globex"]


def test_one_user(client: Any, ledger: Ledger) -> None:
    answer = get(client, "user", user_id="org-acme")
    assert answer["segment"] == "enterprise"
    wallet = ledger.grants.wallets[ledger.users["org-acme"].account, "CREDIT"]
    statement = answer["statement"]
    names = [column["name"] for column in statement["columns"]]
    assert names[:3] == ["Transaction ID", "Date", "Description"]
    assert names[-4:] == ["Earned", "Redeemed", "Expired", "Balance"]
    assert Decimal(statement["rows"][-1][-1]) == wallet.balance
    daily = answer["daily"]["rows"]  # the daily report for the user
    assert daily[-1][:3] == [str(TODAY), "org-acme", "CREDIT"]
    assert daily[-1][-1] == str(wallet.balance)
    grants = rows(answer["grants"])
    assert sum(Decimal(grant["Remaining"]) for grant in grants) == wallet.available
    members = rows(answer["members"])
    assert len(members) == 4
    used = sum(
        -posting.units.number
        for entry in ledger.entries
        if entry.meta.get("member") and entry.date <= TODAY
        for posting in entry.postings
        if posting.account == ledger.users["org-acme"].account
    )
    assert sum(Decimal(member["Redeemed"]) for member in members) == used


def test_one_user_in_a_period(client: Any, ledger: Ledger) -> None:
    answer = get(client, "user", user_id="ingrid_rossi", time="2026-03")
    statement = answer["statement"]["rows"]
    assert statement[0][2] == "Opening balance" and statement[0][1] == "2026-03-01"
    assert all("2026-03-01" <= row[1] <= "2026-03-31" for row in statement)
    daily = answer["daily"]["rows"]
    assert daily[0][0] == "2026-03-01" and daily[-1][0] == "2026-03-31"
    balances = REPORTS["balances"](
        ledger, Filters(user="ingrid_rossi", date_to=datetime.date(2026, 3, 31))
    )
    assert Decimal(daily[-1][-1]) == next(iter(balances.rows))[2] == Decimal(statement[-1][-1])


def test_alerts(client: Any, ledger: Ledger) -> None:
    answer = get(client, "alerts")
    limit = TODAY + datetime.timedelta(days=30)
    expected = sorted(
        (str(grant.expires), grant.id, str(grant.remaining))
        for grant in engine.open_grants(ledger.grants)
        if grant.expires is not None and grant.expires <= limit
    )
    expiring = rows(answer["expiring"])
    assert sorted((row["Expires"], row["Grant"], row["Remaining"]) for row in expiring) == expected
    assert expected, "the demo has credits expiring within 30 days"
    overdraft = rows(answer["overdraft"])
    negative = {
        (ledger.grants.users[wallet.account].meta["user_id"], str(wallet.balance))
        for wallet in ledger.grants.wallets.values()
        if wallet.balance < 0
    }
    assert {(row["User ID"], row["Balance"]) for row in overdraft} == negative
    assert overdraft[0]["Credit limit"] == "200"
    topups = rows(answer["topups"])
    assert [(row["Date"], row["User ID"], row["Reason"]) for row in topups] == [
        ("2026-11-19", "u-1047", "card expired"),
        ("2026-11-12", "ingrid_rossi", "card declined (insufficient funds)"),
    ]
    assert topups[0]["Amount"] == "200 CREDIT"


@pytest.mark.parametrize(
    ("endpoint", "params", "status", "message"),
    [
        ("user", {"user_id": "nobody"}, 404, "unknown user id 'nobody'"),
        ("user", {}, 400, "missing parameter user_id"),
        ("users", {"time": "2026-13-45"}, 400, "time filter: Failed to parse date"),
        ("alerts", {"time": "yesterday-ish"}, 400, "time filter: Failed to parse date"),
        ("user", {"user_id": "org-acme", "time": "soon"}, 400, "time filter"),
        ("users", {"filter": "(("}, 400, "filter"),
        ("users", {"sort": "Height"}, 400, "unknown sort field 'Height' for report 'users'"),
        ("trace", {}, 400, "give one of the parameters grant or txn"),
        ("trace", {"grant": "p-000065", "txn": "r-1"}, 400, "give one of the parameters"),
        ("trace", {"grant": "<script>"}, 400, "unknown grant id '<script>'"),
    ],
)
def test_bad_parameters_are_4xx_with_a_message(
    client: Any, endpoint: str, params: dict, status: int, message: str
) -> None:
    response = client.get(PAGE + endpoint, query_string=params)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_read_only_refuses_writes(client: Any) -> None:
    response = client.post(PAGE + "users")
    assert response.status_code == 401


def test_prefix(tmp_path: Path) -> None:
    app, path = server.make_app(DEMO, prefix="credits/")
    assert path == "/credits" + PAGE
    response = app.test_client().get(path + "users", query_string={"time": "2026-10"})
    assert response.status_code == 200
    assert response.get_json()["as_of"] == "2026-10-31"


def test_serve_refuses_a_ledger_without_the_page(tmp_path: Path) -> None:
    plain = tmp_path / "plain.beancount"
    plain.write_text('option "title" "Plain"\n2024-01-01 open Assets:Cash\n')
    result = CliRunner().invoke(main, ["serve", str(plain), "--port", "0"])
    assert result.exit_code == 2
    assert 'custom "fava-extension" "beancount_credits.fava"' in result.output
    assert "Traceback" not in result.output


VIEW = {"segment": "pro", "sort": "Balance", "desc": "1", "q": "u-"}


def download(client: Any, **params: str) -> Any:
    response = client.get(PAGE + "export", query_string=params)
    assert response.status_code == 200, response.data[:300]
    assert response.mimetype == exports.media_type(params["format"]).split(";")[0]
    assert "attachment" in response.headers["Content-Disposition"]
    return response


def test_csv_is_what_the_page_shows(client: Any) -> None:
    shown = get(client, "users", **VIEW)["table"]
    response = download(client, table="users", format="csv", **VIEW)
    assert "users-" in response.headers["Content-Disposition"]
    records = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert records[0] == [column["name"] for column in shown["columns"]]
    assert records[1:] == [[cell or "" for cell in row] for row in shown["rows"]]
    assert len(records) > 2


def test_xlsx_statement_opens_and_ends_at_the_engine_balance(client: Any, ledger: Ledger) -> None:
    response = download(client, table="statement", format="xlsx", user_id="org-acme")
    assert "statement-org-acme-" in response.headers["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(response.data), read_only=True)
    sheet = book.worksheets[0]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0][-1] == "Balance"
    wallet = ledger.grants.wallets[ledger.users["org-acme"].account, "CREDIT"]
    assert Decimal(str(values[-1][-1])) == wallet.balance
    shown = get(client, "user", user_id="org-acme")["statement"]
    assert len(values) - 1 == len(shown["rows"])


@pytest.mark.parametrize(
    "table", ["users", "daily", "grants", "members", "expiring", "topups", "low_balance"]
)
def test_pdf_of_every_table(client: Any, table: str) -> None:
    response = download(client, table=table, format="pdf", user_id="org-acme")
    assert response.data.startswith(b"%PDF")


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"table": "users", "format": "docx"}, 400, "unknown format 'docx'"),
        ({"table": "users"}, 400, "unknown format ''"),
        ({"table": "ledger", "format": "csv"}, 400, "unknown table 'ledger'"),
        ({"table": "statement", "format": "csv", "user_id": "nobody"}, 404, "unknown user id"),
        ({"table": "users", "format": "csv", "time": "2026-99"}, 400, "time filter"),
    ],
)
def test_bad_export_requests(client: Any, params: dict, status: int, message: str) -> None:
    response = client.get(PAGE + "export", query_string=params)
    assert response.status_code == status
    assert message in response.get_json()["error"]


def test_low_balance_alert_lists_the_users_below_their_threshold(
    client: Any, ledger: Ledger
) -> None:
    table = rows(get(client, "alerts")["low_balance"])
    conf = settings.of(ledger)
    balances = REPORTS["balances"](ledger, Filters(date_to=TODAY))
    currencies = [column.name for column in balances.columns[2:]]
    expected = set()
    for row in balances.rows:
        user = ledger.users[row[0]]
        for currency, balance in zip(currencies, row[2:], strict=True):
            threshold = settings.low_balance_threshold(conf, user, currency, TODAY)
            wallet = ledger.grants.wallets.get((user.account, currency))
            if wallet is None or threshold is None or user.close_date:
                continue
            if balance < threshold.amount.number:
                expected.add((user.user_id, currency, str(balance), str(threshold.amount.number)))
    shown = {(r["User ID"], r["Credit type"], r["Balance"], r["Threshold"]) for r in table}
    assert shown == expected
    # The demo's thresholds: 1000 for enterprise, 200 for pro, 50 by default.
    by_user = {row["User ID"]: row for row in table}
    assert by_user["u-1047"]["Threshold"] == "1000" and by_user["u-1047"]["Set for"] == "segment"
    assert (
        by_user["ravi_okoye"]["Threshold"] == "50" and by_user["ravi_okoye"]["Set for"] == "default"
    )
    assert "org-acme" not in by_user  # its own threshold (2500) is below its balance
    shortfalls = [Decimal(row["Balance"]) - Decimal(row["Threshold"]) for row in table]
    assert shortfalls == sorted(shortfalls)
    # The all-users table carries the threshold as a column.
    users = rows(get(client, "users")["table"])
    acme = next(row for row in users if row["User ID"] == "org-acme")
    assert acme["Low-balance threshold"] == "2500"
    assert {row["User ID"] for row in users if row["Low-balance threshold"] is not None} == set(
        ledger.users
    )


def test_low_balance_alert_agrees_with_the_notifications(client: Any, ledger: Ledger) -> None:
    day = datetime.date(2026, 11, 20)  # the demo's last logged day
    answer = get(client, "alerts", time="2026-11-01 - 2026-11-20")
    shown = {
        (row["User ID"], row["Credit type"], row["Balance"], row["Below since"])
        for row in rows(answer["low_balance"])
    }
    due = {
        (a.user_id, a.fields["commodity"], a.fields["balance"], a.fields["since"])
        for a in alerts.due(ledger, settings.of(ledger), day)
        if a.kind == alerts.LOW_BALANCE
    }
    assert shown == due
    assert len(shown) > 5


def test_journal_preset_only_for_a_valid_opt_in() -> None:
    from beancount_credits.fava import JOURNAL_TYPES, journal_show

    assert journal_show({"journal_hide": ["balance"]}) == [
        kind for kind in JOURNAL_TYPES if kind != "balance"
    ]
    for config in (None, "balance", {}, {"journal_hide": []}, {"journal_hide": "balance"},
                   {"journal_hide": ["balance", "<script>"]}, {"journal_hide": [1]}):  # fmt: skip
        assert journal_show(config) is None


def test_trace_is_the_command_s_trace(client: Any, ledger: Ledger) -> None:
    """The page's trace links ask the same trace as ``bean-credits trace``."""
    from beancount_credits.audit import trace

    found = get(client, "trace", grant="p-000065")
    expected = trace.trace(ledger, "grant", "p-000065")
    assert found["found"] is True
    assert [table["title"] for table in found["tables"]] == ["Grant p-000065"]
    assert (
        found["tables"][0]["rows"][1:]
        == [
            [None if cell is None else format_cell(cell) for cell in row]
            for row in expected.tables[0].rows
        ][1:]
    )
    paid = get(client, "trace", txn="r-000626")["tables"][0]
    assert paid["title"] == "Transaction r-000626: the grants that paid"
    assert rows(paid)[0]["Grant"] == "p-000065" and rows(paid)[0]["Amount"] == "80"
    missing = get(client, "trace", txn="r-999999")
    assert missing["found"] is False
    assert "No entry of the ledger mentions transaction 'r-999999'" in missing["tables"][0]["notes"]
