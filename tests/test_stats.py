"""consent stats: the statistics columns, their migration, their check by verify, the numbers."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from consent.audit import verify_store
from consent.cli import main
from consent.receipts import Receipt, ReceiptSigner, format_time
from consent.stats.query import bucket_start
from consent.store import open_store

from .conftest import execute_sql, make_receipt, record_receipts
from .stats_seed import AM, AMP, SEED, TEST_KEY, Seed, at, seed_receipts

OLD_STORE = Path(__file__).parent / "data" / "store-before-stats.db"
NEXT_STORE = Path(__file__).parent / "data" / "store-before-next.db"
SIGNER = ReceiptSigner([TEST_KEY])


def stats(capsys: pytest.CaptureFixture[str], url: str, *options: str) -> dict[str, Any]:
    assert main(["stats", "--store", url, "--format", "json", *options]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def counts(bucket: dict[str, Any]) -> tuple[Any, ...]:
    """decisions, (accept all, reject all, custom), gpc, {category: (granted, offered)}"""
    choices = bucket["choices"]
    return (
        bucket["decisions"],
        (choices["accept_all"], choices["reject_all"], choices["custom"]),
        bucket["gpc"],
        {k: (v["granted"], v["offered"]) for k, v in bucket["categories"].items() if v["offered"]},
    )


# Worked out by hand from tests/stats_seed.py.
PER_DECISION_BY_DAY = {
    "2026-11-02T00:00:00Z": (3, (1, 1, 1), 1, {"analytics": (2, 3), "marketing": (1, 3)}),
    "2026-11-03T00:00:00Z": (2, (1, 0, 1), 0, {"analytics": (1, 2), "marketing": (2, 2)}),
    "2026-11-10T00:00:00Z": (
        2,
        (1, 1, 0),
        0,
        {"analytics": (1, 2), "marketing": (1, 2), "preferences": (1, 2)},
    ),
    "2026-11-11T00:00:00Z": (
        1,
        (0, 1, 0),
        1,
        {"analytics": (0, 1), "marketing": (0, 1), "preferences": (0, 1)},
    ),
    "2026-12-01T00:00:00Z": (
        2,
        (0, 0, 2),
        0,
        {"analytics": (1, 2), "marketing": (0, 2), "preferences": (2, 2)},
    ),
}
# s1 and s2 twice in November: their latest decisions count (s1 custom, s2 accept-all).
PER_VISITOR_BY_MONTH = {
    "2026-11-01T00:00:00Z": (
        5,
        (1, 2, 2),
        1,
        {"analytics": (2, 5), "marketing": (2, 5), "preferences": (0, 2)},
    ),
    "2026-12-01T00:00:00Z": (
        1,
        (0, 0, 1),
        0,
        {"analytics": (1, 1), "marketing": (0, 1), "preferences": (1, 1)},
    ),
}


def check_numbers(capsys: pytest.CaptureFixture[str], url: str) -> None:
    by_day = stats(capsys, url)
    assert {b["start"]: counts(b) for b in by_day["buckets"]} == PER_DECISION_BY_DAY
    assert by_day["categories"] == ["analytics", "marketing", "preferences"]
    assert [(r["revision"], r["first"], r["decisions"]) for r in by_day["revisions"]] == [
        ("rev-A", "2026-11-02T10:00:00Z", 5),
        ("rev-B", "2026-11-10T09:00:00Z", 5),
    ]
    events = {b["start"][:10]: b["events"] for b in by_day["buckets"]}
    assert events["2026-11-10"] == {"given": 1, "refused": 0, "updated": 0, "withdrawn": 1}
    visitors = stats(capsys, url, "--per", "visitor", "--by", "month")
    assert {b["start"]: counts(b) for b in visitors["buckets"]} == PER_VISITOR_BY_MONTH


def test_numbers_per_decision_and_per_visitor(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record_receipts(store_url, seed_receipts())
    check_numbers(capsys, store_url)


def _indexes(url: str) -> set[str]:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            found = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'consent_stats'"
            ).fetchall()
    else:
        import psycopg

        with psycopg.connect(url) as pg:
            found = pg.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'consent_stats'"
            ).fetchall()
    return {str(name) for (name,) in found} - {"consent_stats_pkey"}


def test_statistics_columns_of_the_version_before_get_next_ts_and_the_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tests/data/store-before-next.db was written by the version whose statistics columns had
    no ``next_ts`` (see tests/data/make_store_before_stats.py). Recording goes on through its
    triggers; the next `consent stats` adds the column, fills it, replaces the triggers and
    the index, and the numbers are right per visitor too."""
    path = tmp_path / "old.db"
    shutil.copy(NEXT_STORE, path)
    url = f"sqlite:///{path}"
    assert _indexes(url) == {"consent_stats_day"}
    before = verify_store(open_store(url, SIGNER), SIGNER)  # verified as it is
    assert before.ok, before.message()
    assert before.count == 10
    assert _indexes(url) == {"consent_stats_day"}
    check_numbers(capsys, url)
    assert _indexes(url) == {"consent_stats_days"}
    # s6's decision of 2026-12-01 08:05 is no longer its last that month.
    later = seed_receipts([SEED[-1]])[0].model_copy(
        update={
            "receipt_id": "00000000-0000-4000-8000-0000000000ff",
            "timestamp": at("2026-12-02 09:00"),
            "granted": [],
            "refused": AMP,
        }
    )
    record_receipts(url, [later])
    december = stats(capsys, url, "--per", "visitor", "--by", "month", "--since", "2026-12-01")
    assert [counts(b) for b in december["buckets"]] == [
        (1, (0, 1, 0), 0, {"analytics": (0, 1), "marketing": (0, 1), "preferences": (0, 1)})
    ]
    result = verify_store(open_store(url, SIGNER), SIGNER)
    assert result.ok, result.message()
    # The earlier release's `consent stats`, run since, adds its index again: dropped again.
    execute_sql(
        url,
        "CREATE INDEX consent_stats_day ON consent_stats ((ts - ts % 86400), revision, granted,"
        " refused, gpc, event, language, method, ts, subject_id)",
    )
    assert stats(capsys, url, "--per", "visitor", "--by", "month", "--since", "2026-12-01") == (
        december
    )
    assert _indexes(url) == {"consent_stats_days"}


@pytest.mark.postgres
def test_postgres_statistics_columns_without_next_ts_are_migrated(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Statistics columns as the version before made them (no ``next_ts``, the index led by
    the day with the subject): the next `consent stats` brings them to this version's."""
    record_receipts(pg_url, seed_receipts())
    execute_sql(
        pg_url,
        "ALTER TABLE consent_stats DROP COLUMN next_ts CASCADE",
        "CREATE INDEX consent_stats_day ON consent_stats ((ts - mod(ts, 86400)), revision,"
        " granted, refused, gpc, event, language, method, ts, subject_id)",
    )
    assert _indexes(pg_url) == {"consent_stats_day"}
    check_numbers(capsys, pg_url)
    assert _indexes(pg_url) == {"consent_stats_days"}
    result = verify_store(open_store(pg_url, SIGNER), SIGNER)
    assert result.ok, result.message()


def test_a_decision_recorded_after_one_with_a_later_time(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two requests of one visitor may be recorded in the other order than their times: the
    decision recorded last counts, and when its time is before ``--since`` the one recorded
    before it is the visitor's latest in the range."""
    seed: list[Seed] = [
        ("v", "2026-11-02 10:05", "given", AM, [], "banner", "en", False, "r"),
        ("v", "2026-11-02 10:00", "refused", [], AM, "banner", "en", False, "r"),
        ("w", "2026-11-02 11:00", "given", AM, [], "banner", "en", False, "r"),
    ]
    record_receipts(store_url, seed_receipts(seed))
    whole = stats(capsys, store_url, "--per", "visitor")
    assert [counts(b) for b in whole["buckets"]] == [
        (2, (1, 1, 0), 0, {"analytics": (1, 2), "marketing": (1, 2)})  # v refused, w given
    ]
    later = stats(capsys, store_url, "--per", "visitor", "--since", "2026-11-02T10:03:00Z")
    assert [counts(b) for b in later["buckets"]] == [
        (2, (2, 0, 0), 0, {"analytics": (2, 2), "marketing": (2, 2)})  # v given at 10:05, w
    ]


def _reference(
    receipts: list[Receipt], by: str, since: int | None, until: int | None
) -> dict[str, tuple[Any, ...]]:
    """Per visitor, worked out the plain way: each visitor's receipt with the highest seq
    among their decisions in each bucket and in the range, counted as :func:`counts` reads."""
    latest: dict[tuple[int, str], Receipt] = {}
    for receipt in receipts:  # in seq order
        ts = receipt.timestamp
        if receipt.event == "once" or (since is not None and ts < since):
            continue
        if until is not None and ts >= until:
            continue
        latest[(bucket_start(ts, by), receipt.subject_id)] = receipt  # type: ignore[arg-type]
    found: dict[str, list[Any]] = {}
    for (start, _), receipt in sorted(latest.items()):
        b = found.setdefault(format_time(start), [0, [0, 0, 0], 0, {}])
        b[0] += 1
        b[1][0 if not receipt.refused else 1 if not receipt.granted else 2] += 1
        b[2] += int(receipt.gpc)
        for key in [*receipt.granted, *receipt.refused]:
            granted, offered = b[3].get(key, (0, 0))
            b[3][key] = (granted + (key in receipt.granted), offered + 1)
    return {k: (v[0], tuple(v[1]), v[2], v[3]) for k, v in found.items()}


def _visits(count: int, seed: int) -> list[Seed]:
    """``count`` decisions of 30 visitors over about ten weeks, each a few minutes to a few
    days after the one before, some visitors coming back often; one in ten "Load this once"."""
    rng = random.Random(seed)
    when = at("2026-10-30 22:00")
    rows: list[Seed] = []
    for _ in range(count):
        when += rng.choice([60, 600, 3_600, 20_000, 86_400, 200_000])
        subject = f"v{min(rng.randrange(30), rng.randrange(30))}"
        granted = [key for key in AMP if rng.random() < 0.5]
        event = rng.choice(["given", "updated", "refused", "withdrawn", "updated", "once"])
        if event in ("refused", "withdrawn"):
            granted = []
        refused = [key for key in AMP if key not in granted]
        method = rng.choice(["banner", "form", "api"])
        rows.append((subject, when, event, granted, refused, method, "en", rng.random() < 0.2, "r"))
    return rows


def test_per_visitor_counts_each_visitors_last_decision_in_each_bucket(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against the plain way, by day, week and month, over the whole log and over ranges
    whose ends cut a visitor's decisions in one bucket apart."""
    receipts = seed_receipts(_visits(240, 7))
    record_receipts(store_url, receipts)
    middle = receipts[120].timestamp
    ranges = [(None, None), (None, middle), (middle - 86_400 * 9, middle + 30_000)]
    for by in ("day", "week", "month"):
        for since, until in ranges:
            options = ["--per", "visitor", "--by", by]
            if since is not None:
                options += ["--since", format_time(since)]
            if until is not None:
                options += ["--until", format_time(until)]
            found = {b["start"]: counts(b) for b in stats(capsys, store_url, *options)["buckets"]}
            assert found == _reference(receipts, by, since, until), (by, since, until)
            assert found  # the range holds decisions


def test_load_this_once_receipts_are_not_counted_as_decisions(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A "Load this once" receipt (event once, method embed) consents to one embed on one page
    view: the numbers are those of the decisions alone."""
    seeded = seed_receipts()
    once = [
        seeded[0].model_copy(
            update={
                "receipt_id": f"00000000-0000-4000-8000-0000000001{n:02d}",
                "event": "once",
                "method": "embed",
                "granted": ["marketing"],
                "refused": [],
                "timestamp": seeded[n].timestamp + 60,
            }
        )
        for n in range(3)
    ]
    record_receipts(store_url, [*seeded, *once])
    check_numbers(capsys, store_url)


def test_weeks_splits_and_ranges(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    record_receipts(store_url, seed_receipts())
    weeks = stats(capsys, store_url, "--by", "week")
    assert [(b["start"], b["decisions"]) for b in weeks["buckets"]] == [
        ("2026-11-02T00:00:00Z", 5),  # a Monday
        ("2026-11-09T00:00:00Z", 3),
        ("2026-11-30T00:00:00Z", 2),
    ]
    by_language = stats(capsys, store_url, "--by", "month", "--split", "language")
    assert [(b["start"][:7], b["language"], b["decisions"]) for b in by_language["buckets"]] == [
        ("2026-11", "de", 2),
        ("2026-11", "en", 5),
        ("2026-11", "fr", 1),
        ("2026-12", "de", 2),
    ]
    by_method = stats(capsys, store_url, "--by", "month", "--split", "method", "--per", "visitor")
    assert [(b["start"][:7], b["method"], b["decisions"]) for b in by_method["buckets"]] == [
        ("2026-11", "api", 2),  # s3, s4 (withdrawn)
        ("2026-11", "banner", 1),  # s2
        ("2026-11", "form", 1),  # s1
        ("2026-11", "gpc", 1),  # s5
        ("2026-12", "form", 1),  # s6
    ]
    window = stats(capsys, store_url, "--since", "2026-11-03", "--until", "2026-11-10T09:15:00Z")
    assert [(b["start"][:10], b["decisions"]) for b in window["buckets"]] == [
        ("2026-11-03", 2),
        ("2026-11-10", 1),
    ]


def test_an_empty_range_is_an_empty_table(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    record_receipts(store_url, seed_receipts())
    assert main(["stats", "--store", store_url, "--since", "2030-01-01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "day",
        "decisions",
        "accept",
        "all",
        "%",
        "reject",
        "all",
        "%",
        "custom",
        "%",
        "GPC",
        "%",
    ]
    assert lines[2] == ""  # no rows
    assert main(["stats", "--store", store_url, "--since", "2030-01-01", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("start,end,decisions,")


def test_a_bad_since_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/consent.db"
    with pytest.raises(SystemExit) as stopped:
        main(["stats", "--store", url, "--since", "last tuesday"])
    assert stopped.value.code == 2
    assert "'last tuesday'" in capsys.readouterr().err


def test_a_missing_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same words as ``export`` and ``verify`` give for a store file that is not there."""
    url = f"sqlite:///{tmp_path}/none.db"
    assert main(["stats", "--store", url]) == 2
    stats_said = capsys.readouterr().err
    assert stats_said == f"consent: error: no receipt database at {tmp_path}/none.db\n"
    assert main(["export", "--store", url]) == 2
    assert capsys.readouterr().err == stats_said
    assert not (tmp_path / "none.db").exists()


# ----------------------------------------------------------------------------- migration


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()


def test_a_store_made_by_the_earlier_version_opens_and_migrates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/data/store-before-stats.db was written by the version before the statistics
    columns (see tests/data/make_store_before_stats.py)."""
    path = tmp_path / "old.db"
    shutil.copy(OLD_STORE, path)
    url = f"sqlite:///{path}"
    assert "consent_stats" not in _tables(path)
    # The web side opens it as before and keeps recording.
    later = seed_receipts()[0].model_copy(
        update={
            "receipt_id": "00000000-0000-4000-8000-0000000000ff",
            "timestamp": at("2026-12-02 09:00"),
        }
    )
    record_receipts(url, [later])
    assert "consent_stats" not in _tables(path)
    # The first statistics add the columns, filled from the signed bodies.
    days = stats(capsys, url)
    assert "consent_stats" in _tables(path)
    found = {b["start"]: counts(b) for b in days["buckets"]}
    assert found.pop("2026-12-02T00:00:00Z") == (
        1,
        (1, 0, 0),
        0,
        {"analytics": (1, 1), "marketing": (1, 1)},
    )
    assert found == PER_DECISION_BY_DAY
    # From now on every receipt gets its row as it is appended.
    record_receipts(
        url, [later.model_copy(update={"receipt_id": "00000000-0000-4000-8000-0000000000fe"})]
    )
    days = stats(capsys, url, "--since", "2026-12-02")
    assert days["buckets"][0]["decisions"] == 2
    result = verify_store(open_store(url, SIGNER), SIGNER)
    assert result.ok, result.message()
    assert result.count == 12


@pytest.mark.postgres
def test_a_postgres_store_of_the_earlier_version_migrates(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The earlier version's tables (its schema, unchanged since) holding the rows of the
    SQLite store it wrote; no statistics tables."""
    import psycopg

    from consent.store.schema import POSTGRES_TABLES

    old = sqlite3.connect(OLD_STORE)
    try:
        rows = old.execute("SELECT * FROM consent_receipts ORDER BY seq").fetchall()
        chain = old.execute("SELECT * FROM consent_chain").fetchall()
    finally:
        old.close()
    with psycopg.connect(pg_url) as pg:
        for statement in POSTGRES_TABLES:
            pg.execute(statement)
        with pg.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO consent_receipts VALUES ({','.join(['%s'] * 10)})", rows
            )
            cursor.executemany(f"INSERT INTO consent_chain VALUES ({','.join(['%s'] * 12)})", chain)
    check_numbers(capsys, pg_url)
    result = verify_store(open_store(pg_url, SIGNER), SIGNER)
    assert result.ok, result.message()


# ------------------------------------------------------------------------------ verify


def test_verify_finds_statistics_that_differ_from_the_body(store_url: str) -> None:
    stored = record_receipts(store_url, seed_receipts())
    execute_sql(
        store_url,
        "UPDATE consent_stats SET granted = 0 WHERE seq = 3",
        "UPDATE consent_stats SET method = 'banner', gpc = 1 WHERE seq = 4",
        "DELETE FROM consent_stats WHERE seq = 6",
    )
    result = verify_store(open_store(store_url, SIGNER), SIGNER)
    assert not result.ok
    assert [(f.seq, f.receipt_id, f.code, f.reason) for f in result.findings] == [
        (
            3,
            stored[2].receipt.receipt_id,
            "column:stats",
            "statistics columns differ from the signed body: granted",
        ),
        (
            4,
            stored[3].receipt.receipt_id,
            "column:stats",
            "statistics columns differ from the signed body: method, gpc",
        ),
        (
            6,
            stored[5].receipt.receipt_id,
            "column:stats",
            "no statistics row (consent_stats) for this receipt",
        ),
    ]


# Each statistics column set to a value its body does not hold (PostgreSQL and SQLite alike).
_EDITS = {
    "ts": "ts + 1",
    "subject_id": "'someone else'",
    "event": "'withdrawn'",
    "granted": "granted + 1",
    "refused": "0",
    "method": "'api'",
    "language": "'xx'",
    "gpc": "1 - gpc",
    "revision": "'r2'",
}


@pytest.mark.parametrize("column", list(_EDITS))
def test_verify_finds_each_statistics_column_that_differs(store_url: str, column: str) -> None:
    """Every column is compared with the body, also where the rows before and after it
    (with the same statistics values) pass."""
    stored = record_receipts(store_url, seed_receipts())
    seq = next(s.seq for s in stored[4:] if s.receipt.refused and s.receipt.method != "api")
    execute_sql(
        store_url, f"UPDATE consent_stats SET {column} = {_EDITS[column]} WHERE seq = {seq}"
    )
    result = verify_store(open_store(store_url, SIGNER), SIGNER)
    assert [(f.seq, f.code, f.reason) for f in result.findings] == [
        (seq, "column:stats", f"statistics columns differ from the signed body: {column}")
    ]


def test_verify_finds_next_ts_that_is_not_the_visitors_next_decision(store_url: str) -> None:
    """``next_ts`` comes from the log, not from one body: moved, cleared or set on a
    visitor's last decision, it is found, on the row that holds it."""
    stored = record_receipts(store_url, seed_receipts())
    execute_sql(
        store_url,
        "UPDATE consent_stats SET next_ts = next_ts + 60 WHERE seq = 1",  # s1: seq 3 follows
        "UPDATE consent_stats SET next_ts = NULL WHERE seq = 2",  # s2: seq 5 follows
        "UPDATE consent_stats SET next_ts = ts + 60 WHERE seq = 3",  # s1's last
    )
    result = verify_store(open_store(store_url, SIGNER), SIGNER)
    reason = "statistics column next_ts is not the time of this visitor's next decision"
    assert [(f.seq, f.receipt_id, f.code, f.reason) for f in result.findings] == [
        (seq, stored[seq - 1].receipt.receipt_id, "column:stats", reason) for seq in (1, 2, 3)
    ]


def test_verify_finds_statistics_rows_without_their_receipt(store_url: str) -> None:
    """A statistics row whose receipt is gone, or whose seq is a chain record's, is found;
    one after the signed head (appended meanwhile) is left to a later verification."""
    record_receipts(store_url, seed_receipts())
    columns = "ts, subject_id, event, granted, refused, method, language, gpc, revision"
    execute_sql(
        store_url,
        # seq 0: before the first receipt; seq 3 moved to seq 0 leaves seq 3 without one
        f"INSERT INTO consent_stats (seq, {columns}) SELECT 0, {columns} FROM consent_stats"
        " WHERE seq = 3",
        "DELETE FROM consent_stats WHERE seq = 3",
        f"INSERT INTO consent_stats (seq, {columns}) SELECT 1000, {columns} FROM consent_stats"
        " WHERE seq = 4",
    )
    result = verify_store(open_store(store_url, SIGNER), SIGNER)
    assert [(f.seq, f.code, f.reason) for f in result.findings] == [
        (3, "column:stats", "no statistics row (consent_stats) for this receipt"),
        # s1's decision before seq 3 looks like its last in what is left of the rows
        (
            1,
            "column:stats",
            "statistics column next_ts is not the time of this visitor's next decision",
        ),
        (0, "column:stats", "a statistics row without its receipt"),
    ]


def test_purge_removes_the_statistics_rows(
    store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    record_receipts(store_url, seed_receipts())
    monkeypatch.setenv("CONSENT_SECRET_KEY", TEST_KEY)
    assert main(["purge", "--store", store_url, "--before", "2026-11-10"]) == 0
    capsys.readouterr()
    days = stats(capsys, store_url)
    assert [b["start"][:10] for b in days["buckets"]] == ["2026-11-10", "2026-11-11", "2026-12-01"]
    result = verify_store(open_store(store_url, SIGNER), SIGNER)
    assert result.ok, result.message()


# ------------------------------------------------------------------------------- the chart


def test_the_chart_as_svg_and_png(store_url: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from xml.etree import ElementTree

    from PIL import Image

    record_receipts(store_url, seed_receipts())
    svg, png = tmp_path / "chart.svg", tmp_path / "chart.png"
    assert main(["stats", "--store", store_url, "--format", "svg", "--output", str(svg)]) == 0
    assert (
        main(["stats", "--store", store_url, "--by", "week", "--format", "png", "-o", str(png)])
        == 0
    )
    root = ElementTree.parse(svg).getroot()
    texts = {"".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"analytics", "marketing", "preferences"} <= texts  # the legend
    assert "policy revision changed" in texts
    assert "revision rev-B" in texts  # the marker where the revision changed
    assert "opt-in rate (granted / offered)" in texts
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size[0] >= 800
        assert image.size[1] >= 400
        image.verify()


def test_a_schema_upgrade_leaves_the_statistics_rows_alone(tmp_path: Path) -> None:
    """A store whose receipt schema moves to a later version (user_version below the current
    one) is not filled again from every body: its statistics rows stay as they are, so a row
    changed behind the store's back is still reported, not silently rewritten."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    record_receipts(url, seed_receipts())
    execute_sql(
        url, "UPDATE consent_stats SET granted = 0 WHERE seq = 3", "PRAGMA user_version = 0"
    )
    # The next append opens the store for writing: its schema statements run again.
    record_receipts(url, [make_receipt(subject_id="s9")])
    with sqlite3.connect(tmp_path / "log.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert conn.execute("SELECT granted FROM consent_stats WHERE seq = 3").fetchone() == (0,)
    result = verify_store(open_store(url, SIGNER), SIGNER)
    assert [(f.seq, f.code) for f in result.findings] == [(3, "column:stats")]
