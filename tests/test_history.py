"""The visitor's history at ``<prefix>/receipt`` (every receipt of their subject id, across
policy revisions, also when the decision no longer counts), the ``withdrawn`` event of a
Reject all after a grant, and the DPV consent records (JSON-LD)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.dpv import DPV, DPV_VERSION, TERMS, purpose_statuses
from consent.receipts import ReceiptSigner
from consent.store import open_store

from .conftest import make_receipt
from .helpers import EXAMPLE_POLICY, copy_policy

KEY = "history-test-key-0123456789abcdef"
HOST = "http://testserver"
SAME_ORIGIN = {"Origin": HOST}
DPV_TERMS = frozenset(
    line.strip()
    for line in (Path(__file__).parent / "data" / "dpv-2.2-terms.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
OPTIONAL = ["analytics", "embedded", "marketing", "preferences"]


def page(request: Request) -> Response:
    return PlainTextResponse("hi")


site = Starlette(routes=[Route("/", page)])


def middleware(policy: Path | str, db: str) -> ConsentMiddleware:
    return ConsentMiddleware(site, policy=policy, secret_key=KEY, store=db)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'consent.db'}"


@pytest.fixture
def client(db: str) -> Iterator[TestClient]:
    with TestClient(middleware(EXAMPLE_POLICY, db), base_url=HOST) as c:
        yield c


def decide(client: TestClient, accept: Any, **kwargs: Any) -> dict[str, Any]:
    response = client.post("/_consent", json={"accept": accept}, headers=SAME_ORIGIN, **kwargs)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


# --------------------------------------------------------------------------- withdrawn


def test_reject_all_after_a_grant_is_withdrawn(client: TestClient) -> None:
    assert decide(client, "all")["event"] == "given"
    assert decide(client, ["analytics"])["event"] == "updated"  # a partial withdrawal
    withdrawn = decide(client, [])
    assert withdrawn["event"] == "withdrawn"
    assert withdrawn["receipt"]["granted"] == []
    # nothing granted before: refusing again is an update, not a withdrawal
    assert decide(client, [])["event"] == "updated"
    assert decide(client, ["marketing"])["event"] == "updated"


def test_reject_all_from_the_form_after_accept_all_is_withdrawn(client: TestClient) -> None:
    form = {"accept": "all", "next": "/"}
    client.post("/_consent", data=form, headers=SAME_ORIGIN, follow_redirects=False)
    client.post(
        "/_consent",
        data={"accept": "none", "next": "/"},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )
    events = [r["event"] for r in client.get("/_consent/receipt").json()["receipts"]]
    assert events == ["withdrawn", "given"]


def test_a_first_refusal_stays_refused(client: TestClient) -> None:
    assert decide(client, [])["event"] == "refused"


# --------------------------------------------------------------------------- the history


def _change_the_text(policy: Path) -> None:
    analytics = policy / "analytics.toml"
    analytics.write_text(
        analytics.read_text().replace(
            "Our own analytics counts", "Our own analytics (new wording) counts", 1
        )
    )


def test_the_whole_history_across_two_revisions(tmp_path: Path, db: str) -> None:
    policy = copy_policy(tmp_path)
    with TestClient(middleware(policy, db), base_url=HOST) as first:
        given = decide(first, "all")
        updated = decide(first, ["analytics"])
        cookie = first.cookies["consent"]
        revision_a = given["receipt"]["revision"]
        assert first.get(f"/_consent/revision/{revision_a}").status_code == 200
    _change_the_text(policy)
    with TestClient(middleware(policy, db), base_url=HOST) as second:
        second.cookies.set("consent", cookie)
        assert second.get("/_consent").json()["decided"] is False  # asked again
        # ... and the visitor's history is still theirs, marked as no longer current
        stale = second.get("/_consent/receipt").json()
        assert stale["current"] is False
        assert [r["receipt_id"] for r in stale["receipts"]] == [
            updated["receipt_id"],
            given["receipt_id"],
        ]
        third = decide(second, [])
        assert third["event"] == "refused"  # a first decision under the new revision
        assert third["receipt"]["subject_id"] == given["receipt"]["subject_id"]
        revision_b = third["receipt"]["revision"]
        assert revision_b != revision_a

        data = second.get("/_consent/receipt").json()
        assert data["current"] is True
        assert data["subject_id"] == given["receipt"]["subject_id"]
        ids = [r["receipt_id"] for r in data["receipts"]]
        assert ids == [third["receipt_id"], updated["receipt_id"], given["receipt_id"]]
        assert data["receipt"]["receipt_id"] == third["receipt_id"]  # the newest, as before
        assert [r["revision_url"] for r in data["receipts"]] == [
            f"/_consent/revision/{revision_b}",
            f"/_consent/revision/{revision_a}",
            f"/_consent/revision/{revision_a}",
        ]
        signer = ReceiptSigner([KEY])
        assert all(signer.verify(r["body"], r["kid"], r["signature"]) for r in data["receipts"])

        html = second.get("/_consent/receipt", headers={"Accept": "text/html"})
        assert html.status_code == 200
        for receipt_id in ids:
            assert receipt_id in html.text
        assert given["receipt"]["subject_id"] in html.text
        assert html.text.index(ids[0]) < html.text.index(ids[1]) < html.text.index(ids[2])
        current = second.get(f"/_consent/revision/{revision_b}", headers={"Accept": "text/html"})
        assert current.status_code == 200
        assert "new wording" in current.text
        assert current.text.count("<h1") == 1
        # An earlier revision's text comes from the store's policy archive.
        old = second.get(f"/_consent/revision/{revision_a}", headers={"Accept": "text/html"})
        assert old.status_code == 200
        assert "Our own analytics counts" in old.text
        assert "new wording" not in old.text
        assert "kept in the site" in old.text
        assert second.get("/_consent/revision/xyz").status_code == 404


def test_an_expired_cookie_still_shows_the_history(client: TestClient) -> None:
    given = decide(client, ["analytics"])
    mw = client.app
    assert isinstance(mw, ConsentMiddleware)
    lifetime = mw.cookie.lifetime
    old = mw.cookie.decision(
        ["analytics"],
        receipt_id=given["receipt_id"],
        subject_id=given["receipt"]["subject_id"],
        decided_at=int(time.time()) - lifetime - 60,
    )
    client.cookies.clear()
    client.cookies.set("consent", mw.cookie.dumps(old))
    assert client.get("/_consent").json()["decided"] is False
    data = client.get("/_consent/receipt").json()
    assert data["current"] is False
    assert [r["receipt_id"] for r in data["receipts"]] == [given["receipt_id"]]
    page = client.get("/_consent/receipt", headers={"Accept": "text/html"}).text
    assert "no longer applies" in page
    assert given["receipt"]["subject_id"] in page
    # a forged cookie shows nothing, expired or not
    forged = mw.cookie.dumps(old)
    client.cookies.clear()
    client.cookies.set("consent", forged[:-3] + ("AAA" if not forged.endswith("AAA") else "BBB"))
    assert client.get("/_consent/receipt").status_code == 404


def test_without_a_decision_the_readable_404_stays(client: TestClient) -> None:
    html = client.get("/_consent/receipt", headers={"Accept": "text/html"})
    assert html.status_code == 404
    assert 'href="/_consent/declaration"' in html.text
    assert client.get("/_consent/receipt").status_code == 404
    jsonld = client.get("/_consent/receipt", headers={"Accept": "application/ld+json"})
    assert jsonld.status_code == 404


def test_the_download_is_an_attachment_of_the_same_json(client: TestClient) -> None:
    decide(client, "all")
    decide(client, [])
    download = client.get("/_consent/receipt?format=json", headers={"Accept": "text/html"})
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/json"
    subject = download.json()["subject_id"]
    assert download.headers["content-disposition"] == (
        f'attachment; filename="consent-receipts-{subject}.json"'
    )
    assert download.json()["receipts"] == client.get("/_consent/receipt").json()["receipts"]
    assert download.json()["complete"] is True
    page = client.get("/_consent/receipt", headers={"Accept": "text/html"}).text
    assert 'href="/_consent/receipt?format=json" download' in page


def test_the_store_being_down_is_503(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'consent.db'}"
    with TestClient(middleware(EXAMPLE_POLICY, db), base_url=HOST) as c:
        decide(c, "all")
        (tmp_path / "consent.db").unlink()
        (tmp_path / "consent.db").mkdir()  # not a database any more
        response = c.get("/_consent/receipt")
        assert response.status_code == 503
        assert response.json()["error"] == "the receipt store is unavailable"


# --------------------------------------------------------------------------- DPV


def _dpv_terms(node: Any) -> set[str]:
    """Every ``dpv:`` term a JSON-LD document uses, as keys or values."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("dpv:"):
                found.add(key[4:])
            found |= _dpv_terms(value)
    elif isinstance(node, list):
        for item in node:
            found |= _dpv_terms(item)
    elif isinstance(node, str) and node.startswith("dpv:"):
        found.add(node[4:])
    return found


def test_every_term_the_code_cites_is_in_dpv() -> None:
    assert DPV == "https://w3id.org/dpv#"
    assert DPV_VERSION == "https://w3id.org/dpv/2.2"
    assert TERMS <= DPV_TERMS, sorted(TERMS - DPV_TERMS)
    assert "ConsentWithdrawn" in DPV_TERMS
    assert "ConsentGivenNot" not in DPV_TERMS  # the list is a real one


def test_the_receipt_as_json_ld(client: TestClient) -> None:
    decide(client, "all")
    decide(client, ["analytics"])
    decide(client, [])
    response = client.get("/_consent/receipt", headers={"Accept": "application/ld+json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json"
    document = json.loads(response.text)
    assert document["@context"]["dpv"] == "https://w3id.org/dpv#"
    used = _dpv_terms(document)
    assert used <= DPV_TERMS, sorted(used - DPV_TERMS)
    assert {"ConsentRecord", "hasConsentStatus", "hasDataSubject", "hasPurpose"} <= used
    records = document["@graph"]
    assert [r["@type"] for r in records] == ["dpv:ConsentRecord"] * 3
    subject = records[0]["dpv:hasDataSubject"]["dpv:hasIdentifier"]
    assert all(r["dpv:hasDataSubject"]["dpv:hasIdentifier"] == subject for r in records)

    def statuses(record: dict[str, Any]) -> dict[str, str]:
        return {
            part["dpv:hasPurpose"]["dct:identifier"]: part["dpv:hasConsentStatus"]["@id"]
            for part in record["dct:hasPart"]
        }

    withdrawn, updated, given = records
    assert statuses(given) == dict.fromkeys(OPTIONAL, "dpv:ConsentGiven")
    assert statuses(updated) == {
        "analytics": "dpv:RenewedConsentGiven",
        "embedded": "dpv:ConsentWithdrawn",
        "marketing": "dpv:ConsentWithdrawn",
        "preferences": "dpv:ConsentWithdrawn",
    }
    assert statuses(withdrawn) == {
        "analytics": "dpv:ConsentWithdrawn",
        "embedded": "dpv:ConsentRefused",
        "marketing": "dpv:ConsentRefused",
        "preferences": "dpv:ConsentRefused",
    }
    # necessary categories are not based on consent: no consent status for them
    assert "necessary" not in statuses(given)
    marketing = next(
        p["dpv:hasPurpose"]
        for p in given["dct:hasPart"]
        if p["dpv:hasPurpose"]["dct:identifier"] == "marketing"
    )
    assert marketing["dpv:hasRecipient"][0]["@type"] == "dpv:ThirdParty"
    assert given["dpv:hasNotice"]["@id"] == "http://testserver/cookie-policy"


def test_derived_statuses_when_asked() -> None:
    receipt = make_receipt(timestamp=1_000, revision="rev-1")
    from consent.dpv import record

    plain = record(receipt)
    part = plain["dct:hasPart"][0]
    assert part["dpv:hasConsentStatus"] == {"@id": "dpv:ConsentGiven"}
    stale = record(receipt, now=5_000, lifetime=100, revision="rev-2")
    statuses = [s["@id"] for s in stale["dct:hasPart"][0]["dpv:hasConsentStatus"]]
    assert statuses == ["dpv:ConsentGiven", "dpv:ConsentExpired", "dpv:ConsentInvalidated"]
    refused = [
        p for p in stale["dct:hasPart"] if p["dpv:hasPurpose"]["dct:identifier"] == "marketing"
    ]
    assert refused[0]["dpv:hasConsentStatus"] == {"@id": "dpv:ConsentRefused"}


@pytest.mark.parametrize(
    ("event", "granted", "previous", "expected"),
    [
        (
            "given",
            ["analytics"],
            None,
            {"analytics": "ConsentGiven", "marketing": "ConsentRefused"},
        ),
        ("refused", [], None, {"analytics": "ConsentRefused", "marketing": "ConsentRefused"}),
        (
            "updated",
            ["analytics"],
            ["analytics", "marketing"],
            {"analytics": "RenewedConsentGiven", "marketing": "ConsentWithdrawn"},
        ),
        (
            "updated",
            ["analytics"],
            [],
            {"analytics": "ConsentGiven", "marketing": "ConsentRefused"},
        ),
        (
            "updated",
            ["analytics"],
            None,
            {"analytics": "RenewedConsentGiven", "marketing": "ConsentRefused"},
        ),
        (
            "withdrawn",
            [],
            ["marketing"],
            {"analytics": "ConsentRefused", "marketing": "ConsentWithdrawn"},
        ),
        ("withdrawn", [], None, {"analytics": "ConsentWithdrawn", "marketing": "ConsentWithdrawn"}),
    ],
)
def test_purpose_statuses(
    event: str, granted: list[str], previous: list[str] | None, expected: dict[str, str]
) -> None:
    refused = sorted({"analytics", "marketing"} - set(granted))
    receipt = make_receipt(event=event, granted=granted, refused=refused)
    assert purpose_statuses(receipt, previous) == expected


# --------------------------------------------------------------------------- command line


def _fill_two_visitors(url: str) -> tuple[list[Any], list[Any]]:
    from .conftest import record_receipts

    start = 1_700_000_000
    receipts = [
        make_receipt(subject_id="alice", timestamp=start, event="given", granted=["analytics"]),
        make_receipt(subject_id="bob", timestamp=start + 10, event="refused", granted=[]),
        make_receipt(subject_id="alice", timestamp=start + 20, event="withdrawn", granted=[]),
        make_receipt(subject_id="bob", timestamp=start + 30, event="updated"),
    ]
    stored = record_receipts(url, receipts)
    return [s for s in stored if s.receipt.subject_id == "alice"], stored


def test_export_subject_and_what_its_verification_says(tmp_path: Path) -> None:
    from .conftest import TEST_KEY
    from .helpers import run_consent

    url = f"sqlite:///{tmp_path / 'log.db'}"
    alice, _ = _fill_two_visitors(url)
    out = tmp_path / "alice.jsonl"
    done = run_consent("export", "--store", url, "--subject", "alice", "-o", str(out), key=TEST_KEY)
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert [json.loads(line)["receipt_id"] for line in lines[:-1]] == [s.receipt_id for s in alice]
    statement = json.loads(lines[-1])["subject_export"]
    assert (statement["subject_id"], statement["receipts"]) == ("alice", 2)
    assert statement["head"]["seq"] == 4

    done = run_consent("verify", "--file", str(out), key=TEST_KEY)
    assert done.returncode == 0, done.stdout
    report = done.stdout
    assert report.splitlines()[0] == "OK: 2 receipts verified"
    assert "subject export: 2 receipts of subject alice; each is genuine" in report
    assert "signed statement: these are every receipt of this subject the log held" in report
    assert "not shown: that no receipt was left out" in report
    assert "no chain head" not in report

    # a receipt left out of the file: the statement no longer matches
    (tmp_path / "cut.jsonl").write_text(lines[1] + "\n" + lines[-1] + "\n")
    done = run_consent("verify", "--file", str(tmp_path / "cut.jsonl"), key=TEST_KEY)
    assert done.returncode == 1
    assert "the statement counts 2 receipts, the file holds 1" in done.stdout
    # a statement edited to claim fewer receipts: its signature fails
    edited = json.loads(lines[-1])
    edited["subject_export"]["receipts"] = 1
    (tmp_path / "edited.jsonl").write_text(lines[1] + "\n" + json.dumps(edited) + "\n")
    done = run_consent("verify", "--file", str(tmp_path / "edited.jsonl"), key=TEST_KEY)
    assert done.returncode == 1
    assert "signature does not verify" in done.stdout

    # exported without the key: genuine receipts, an unsigned statement, said so
    done = run_consent("export", "--store", url, "--subject", "alice", key=None)
    (tmp_path / "unsigned.jsonl").write_text(done.stdout)
    done = run_consent("verify", "--file", str(tmp_path / "unsigned.jsonl"), key=TEST_KEY)
    assert done.returncode == 0
    assert "the statement is not signed" in done.stdout
    # no such subject: an empty export that says so
    done = run_consent("export", "--store", url, "--subject", "carol", key=TEST_KEY)
    assert json.loads(done.stdout)["subject_export"]["receipts"] == 0
    bad = run_consent("export", "--store", url, "--subject", "a", "--format", "csv", key=None)
    assert bad.returncode == 2


def test_load_this_once_leaves_the_previous_decision_for_the_next_record(
    client: TestClient, db: str, tmp_path: Path
) -> None:
    """Accept analytics, "Load this once" a video, then Reject all: the withdrawal is judged
    against the decision before the video (analytics withdrawn), in the history's JSON-LD and
    in consent export --format dpv alike."""
    decide(client, ["analytics"])
    once = {"category": "embedded", "src": "https://www.youtube-nocookie.com/embed/x", "page": "/"}
    assert client.post("/_consent/once", json=once, headers=SAME_ORIGIN).status_code == 200
    decide(client, [])
    response = client.get("/_consent/receipt", headers={"Accept": "application/ld+json"})
    withdrawn, loaded, _given = json.loads(response.text)["@graph"]

    def statuses(record: dict[str, Any]) -> dict[str, str]:
        return {
            part["dpv:hasPurpose"]["dct:identifier"]: part["dpv:hasConsentStatus"]["@id"]
            for part in record["dct:hasPart"]
        }

    expected = {
        "analytics": "dpv:ConsentWithdrawn",
        "embedded": "dpv:ConsentRefused",
        "marketing": "dpv:ConsentRefused",
        "preferences": "dpv:ConsentRefused",
    }
    assert statuses(withdrawn) == expected
    assert statuses(loaded)["embedded"] == "dpv:ConsentGiven"
    from .helpers import run_consent

    done = run_consent("export", "--store", db, "--format", "dpv", key=None)
    assert done.returncode == 0, done.stderr
    exported = [json.loads(line) for line in done.stdout.splitlines()]
    assert statuses(exported[-1]) == expected


def test_export_dpv_lines(tmp_path: Path) -> None:
    from .conftest import TEST_KEY
    from .helpers import run_consent

    url = f"sqlite:///{tmp_path / 'log.db'}"
    _fill_two_visitors(url)
    done = run_consent("export", "--store", url, "--format", "dpv", key=TEST_KEY)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == 4
    for record in records:
        assert record["@context"]["dpv"] == "https://w3id.org/dpv#"
        assert _dpv_terms(record) <= DPV_TERMS
    status = {
        (r["dpv:hasDataSubject"]["dpv:hasIdentifier"], r["dct:description"]): {
            p["dpv:hasPurpose"]["dct:identifier"]: p["dpv:hasConsentStatus"]["@id"]
            for p in r["dct:hasPart"]
        }
        for r in records
    }
    assert status[("alice", "consent receipt: given")]["analytics"] == "dpv:ConsentGiven"
    # alice's withdrawal follows her grant of analytics (the export knows her previous receipt)
    assert status[("alice", "consent receipt: withdrawn")] == {
        "analytics": "dpv:ConsentWithdrawn",
        "marketing": "dpv:ConsentRefused",
    }
    done = run_consent("export", "--store", url, "--format", "dpv", "--subject", "bob", key=None)
    assert len(done.stdout.splitlines()) == 2


def test_purge_by_the_policy_retention_with_a_dry_run_first(tmp_path: Path) -> None:
    from .conftest import TEST_KEY, record_receipts
    from .helpers import run_consent

    url = f"sqlite:///{tmp_path / 'log.db'}"
    now = int(time.time())
    day = 86_400
    policy = copy_policy(tmp_path)
    site = policy / "site.toml"
    site.write_text(site.read_text().replace("retention_days = 1095", "retention_days = 30"))
    assert "retention_days = 30" in site.read_text()
    ages = [400, 100, 31, 29, 1]  # days ago
    record_receipts(
        url,
        [make_receipt(subject_id=f"v{i}", timestamp=now - age * day) for i, age in enumerate(ages)],
    )
    store = open_store(url, ReceiptSigner([TEST_KEY]))

    dry = run_consent("purge", "--store", url, "--policy", str(policy), "--dry-run", key=TEST_KEY)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("Dry run: would purge 3 receipts recorded before ")
    assert "(seq 1 to 3, recorded " in dry.stdout
    assert "Nothing was deleted." in dry.stdout
    assert store.count() == 5  # nothing deleted

    # the same with an explicit cut-off
    dry = run_consent("purge", "--store", url, "--before", "2000-01-01", "--dry-run", key=TEST_KEY)
    assert "nothing would go" in dry.stdout

    done = run_consent("purge", "--store", url, "--policy", str(policy), key=TEST_KEY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Purged 3 receipts recorded before ")
    assert store.count() == 2
    verified = run_consent("verify", "--store", url, key=TEST_KEY)
    assert verified.returncode == 0
    assert verified.stdout.splitlines()[0] == "OK: 2 receipts verified"
    assert "purged: 3 receipts recorded before" in verified.stdout

    both = run_consent(
        "purge", "--store", url, "--policy", str(policy), "--before", "2020-01-01", key=TEST_KEY
    )
    assert both.returncode == 2
    assert "--before TIME, or --policy DIR" in both.stderr
    (policy / "site.toml").write_text("nonsense = [")
    broken = run_consent("purge", "--store", url, "--policy", str(policy), key=TEST_KEY)
    assert broken.returncode == 2
    assert "invalid cookie policy" in broken.stderr
