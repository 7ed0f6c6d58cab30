"""The policy archive: the texts behind every receipt, kept in the store by revision, against a
real SQLite file and the test PostgreSQL server; what ``consent verify`` finds when they are
edited or removed; ``consent revisions``; exports that carry them."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.archive import archive_entry, policy_document, policy_from_document
from consent.audit import verify_file, verify_store
from consent.audit.archive import check_store
from consent.audit.revisions import find_revision, revisions
from consent.policy import Policy, load_policy
from consent.receipts import ReceiptSigner
from consent.store import open_store

from .conftest import TEST_KEY, execute_sql, make_receipt, record_receipts
from .helpers import EXAMPLE_POLICY, copy_policy, run_consent

SIGNER = ReceiptSigner([TEST_KEY])
HOST = "http://testserver"
SAME_ORIGIN = {"Origin": HOST}
APP = Starlette()


def _decide(policy: Path | Policy, url: str, *accepts: Any) -> list[dict[str, Any]]:
    """Each of ``accepts`` posted by a new visitor through a real middleware."""
    mw = ConsentMiddleware(APP, policy=policy, secret_key=TEST_KEY, store=url)
    out = []
    with TestClient(mw, base_url=HOST) as client:
        for accept in accepts:
            response = client.post("/_consent", json={"accept": accept}, headers=SAME_ORIGIN)
            assert response.status_code == 200, response.text
            out.append(response.json())
            client.cookies.clear()
    return out


def _two_revisions(tmp_path: Path, url: str) -> tuple[Policy, Policy]:
    """Decisions under revision A, the analytics text changed, decisions under B; then the
    policy directories are gone."""
    a_dir = copy_policy(tmp_path, "a")
    a = load_policy(a_dir)
    _decide(a_dir, url, ["analytics"])
    b_dir = copy_policy(tmp_path, "b")
    analytics = b_dir / "analytics.toml"
    text = analytics.read_text()
    assert 'title = "Analytics"' in text
    analytics.write_text(text.replace('title = "Analytics"', 'title = "Reading statistics"'))
    b = load_policy(b_dir)
    assert b.revision != a.revision
    _decide(b_dir, url, "all", [])
    shutil.rmtree(a_dir)
    shutil.rmtree(b_dir)
    return a, b


def test_the_site_serves_an_archived_revisions_text_after_the_policy_changed(
    tmp_path: Path, store_url: str
) -> None:
    """A receipt's revision link works after the policy changed and its directory is gone:
    the text comes from the store's archive, rendered as the declaration is."""
    a, b = _two_revisions(tmp_path, store_url)
    b_dir = copy_policy(tmp_path, "b-again")
    analytics = b_dir / "analytics.toml"
    analytics.write_text(
        analytics.read_text().replace('title = "Analytics"', 'title = "Reading statistics"')
    )
    assert load_policy(b_dir).revision == b.revision
    mw = ConsentMiddleware(APP, policy=b_dir, secret_key=TEST_KEY, store=store_url)
    html = {"Accept": "text/html"}
    with TestClient(mw, base_url=HOST) as client:
        old = client.get(f"/_consent/revision/{a.revision[:16]}", headers=html)
        assert old.status_code == 200, old.text
        assert 'id="category-analytics">Analytics ' in old.text
        assert "Reading statistics" not in old.text
        assert a.revision in old.text
        assert "kept in the site" in old.text
        assert "consent records" in old.text
        as_json = client.get(f"/_consent/revision/{a.revision}")
        assert as_json.status_code == 200
        assert as_json.json()["revision"] == a.revision
        now = client.get(f"/_consent/revision/{b.revision[:16]}", headers=html)
        assert now.status_code == 200
        assert "Reading statistics" in now.text
        unknown = client.get("/_consent/revision/0123456789abcdef", headers=html)
        assert unknown.status_code == 404


def _verify(url: str) -> tuple[bool, list[str]]:
    result = verify_store(open_store(url, SIGNER), SIGNER)
    return result.ok, [f.line() for f in result.findings]


# --------------------------------------------------------------------------- the store


def test_texts_come_back_by_revision_after_the_policy_is_gone(
    tmp_path: Path, store_url: str
) -> None:
    a, b = _two_revisions(tmp_path, store_url)
    store = open_store(store_url, SIGNER)
    known = {r.revision: r for r in revisions(store)}
    assert set(known) == {a.revision, b.revision}
    assert (known[a.revision].receipts, known[b.revision].receipts) == (1, 2)
    for policy in (a, b):
        (entry,) = known[policy.revision].archived
        document = json.loads(entry.body)
        # exactly what the policy held: its texts, in the declaration's shape
        assert document["policy"] == policy.revision_document()
        assert document == policy_document(policy)
        assert policy_from_document(document).revision == policy.revision
    assert (
        json.loads(known[a.revision].archived[0].body)["policy"]["categories"]["analytics"]["title"]
        == "Analytics"
    )
    assert _verify(store_url) == (True, [])


def test_archived_once_before_the_first_receipt_of_its_revision(
    tmp_path: Path, store_url: str
) -> None:
    policy = load_policy(EXAMPLE_POLICY)
    _decide(policy, store_url, "all", [])
    _decide(policy, store_url, ["analytics"])  # another process of the same site
    rows = list(open_store(store_url, SIGNER).iter_raw())
    assert [row.event for row in rows] == ["policy", "given", "refused", "given"]
    fields = json.loads(rows[0].body)
    assert fields["revision"] == policy.revision
    assert fields["began"] is True
    (entry,) = open_store(store_url, SIGNER).iter_policies()
    assert fields["digest"] == entry.digest == hashlib.sha256(entry.body.encode()).hexdigest()


def test_an_edited_archived_text_is_found(tmp_path: Path, store_url: str) -> None:
    _a, _ = _two_revisions(tmp_path, store_url)
    execute_sql(
        store_url,
        "UPDATE consent_policies SET body = REPLACE(body, 'Reading statistics', 'Statistics')",
    )
    ok, lines = _verify(store_url)
    assert not ok
    assert any("does not hash to the digest" in line for line in lines), lines


def test_a_rewritten_text_with_its_digest_recomputed_is_found(
    tmp_path: Path, store_url: str
) -> None:
    """Someone who can write the database edits a text and stores the new text's hash as its
    digest (and the revision stays): the signed policy record in the log names the old
    digest, and the policy texts no longer hash to the revision."""
    a, _ = _two_revisions(tmp_path, store_url)
    store = open_store(store_url, SIGNER)
    entry = next(e for e in store.iter_policies() if e.revision == a.revision)
    body = entry.body.replace('"Analytics"', '"Statistics"')
    digest = hashlib.sha256(body.encode()).hexdigest()
    quoted = body.replace("'", "''")
    execute_sql(
        store_url,
        f"UPDATE consent_policies SET body = '{quoted}', digest = '{digest}'"
        f" WHERE digest = '{entry.digest}'",
    )
    ok, lines = _verify(store_url)
    assert not ok
    assert any("no longer holds" in line for line in lines), lines
    assert any("do not hash to its revision" in line for line in lines), lines


def test_a_removed_text_is_found(tmp_path: Path, store_url: str) -> None:
    _, b = _two_revisions(tmp_path, store_url)
    execute_sql(store_url, f"DELETE FROM consent_policies WHERE revision = '{b.revision}'")
    ok, lines = _verify(store_url)
    assert not ok
    assert any("no longer holds" in line for line in lines), lines
    assert sum("which is not archived" in line for line in lines) == 2, lines


def test_a_receipt_after_archiving_began_under_an_unarchived_revision_is_found(
    tmp_path: Path, store_url: str
) -> None:
    """A receipt appended straight to the store (not by the middleware, which archives
    first) under a revision that is not archived."""
    policy = load_policy(EXAMPLE_POLICY)
    record_receipts(store_url, [make_receipt(revision="f" * 64)])  # before archiving began
    _decide(policy, store_url, "all")
    assert _verify(store_url) == (True, [])
    (late,) = record_receipts(store_url, [make_receipt(revision="e" * 64)])
    ok, lines = _verify(store_url)
    assert not ok
    assert lines == [
        f"BROKEN at receipt {late.receipt.receipt_id} (seq {late.seq}): receipt recorded after "
        f"archiving began (seq 2) names revision {'e' * 16}, which is not archived"
    ]


def test_archiving_beginning_again_is_found(tmp_path: Path, store_url: str) -> None:
    """Every archived text removed: the next process writes a record saying archiving began
    again, which verify reports."""
    policy = load_policy(EXAMPLE_POLICY)
    _decide(policy, store_url, "all")
    execute_sql(store_url, "DELETE FROM consent_policies")
    _decide(policy, store_url, [])
    ok, lines = _verify(store_url)
    assert not ok
    assert any("archiving began again (it began at seq 1)" in line for line in lines), lines


def test_purge_keeps_the_archive_verifying(tmp_path: Path, store_url: str) -> None:
    """A purge that removes the record where archiving began: the texts stay, and the
    receipts after the checkpoint are still checked against them."""
    a_dir = copy_policy(tmp_path, "a")
    a = load_policy(a_dir)
    _decide(a_dir, store_url, ["analytics"])
    time.sleep(1.05 - time.time() % 1)  # the next second: a purge cut-off between A and B
    b_dir = copy_policy(tmp_path, "b")
    (b_dir / "marketing.toml").write_text(
        (b_dir / "marketing.toml").read_text().replace('title = "', 'title = "Ads: ', 1)
    )
    b = load_policy(b_dir)
    _decide(b_dir, store_url, "all")
    store = open_store(store_url, SIGNER)
    cut = [row for row in store.iter_raw() if row.event == "policy"][1].timestamp
    assert store.purge(cut) == 2  # the first policy record and the receipt under A
    assert [row.event for row in store.iter_raw()] == ["policy", "given"]
    assert _verify(store_url) == (True, [])
    assert {e.revision for e in store.iter_policies()} == {a.revision, b.revision}
    record_receipts(store_url, [make_receipt(revision="d" * 64)])
    ok, lines = _verify(store_url)
    assert not ok
    assert any(f"names revision {'d' * 16}, which is not archived" in x for x in lines), lines


def test_a_store_of_an_earlier_version_starts_archiving(tmp_path: Path) -> None:
    """A log written before the archive existed (no table, receipts naming revisions nobody
    kept) verifies; the first decision afterwards archives and begins checking."""
    url = f"sqlite:///{tmp_path}/old.db"
    record_receipts(url, [make_receipt(revision="a" * 64), make_receipt(revision="b" * 64)])
    execute_sql(url, "DROP TABLE consent_policies", "PRAGMA user_version = 1")
    assert list(open_store(url, SIGNER).iter_policies()) == []
    assert _verify(url) == (True, [])
    _decide(load_policy(EXAMPLE_POLICY), url, "all")
    assert len(list(open_store(url, SIGNER).iter_policies())) == 1
    assert _verify(url) == (True, [])


def test_the_memory_store_archives_and_verifies() -> None:
    url = "memory://archive-test"
    policy = load_policy(EXAMPLE_POLICY)
    _decide(policy, url, "all", [])
    store = open_store(url, SIGNER)
    assert [e.revision for e in store.iter_policies()] == [policy.revision]
    assert check_store(store, SIGNER, store.chain_state()) == []


# --------------------------------------------------------------------------- what asks again


def test_the_banner_wording_is_archived_but_does_not_change_the_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = load_policy(EXAMPLE_POLICY)
    before = archive_entry(policy)
    document = json.loads(before.body)
    assert document["banner"]["de"]["strings"]["accept_all"] == "Alle akzeptieren"
    assert document["banner"]["en"]["notice"] == policy.site.notice_for("en")
    assert set(document["banner"]) >= {"en", "de", "fr"}

    import consent.archive as archive

    real = archive.ui_strings

    def relabelled(language: str) -> dict[str, str]:
        return {**real(language), "accept_all": "OK, fine"}

    monkeypatch.setattr(archive, "ui_strings", relabelled)
    after = archive_entry(load_policy(EXAMPLE_POLICY))
    assert after.revision == before.revision  # visitors are not asked again
    assert after.digest != before.digest  # but the new wording is archived beside the old
    assert json.loads(after.body)["banner"]["de"]["strings"]["accept_all"] == "OK, fine"


def test_texts_rules_controller_and_policy_url_change_the_revision(tmp_path: Path) -> None:
    base = load_policy(EXAMPLE_POLICY).revision
    edits = {
        "analytics.toml": ("description = ", 'description = "More. " + '),
        "site.toml": ("policy_url = ", 'policy_url = "/other-policy"\n#'),
    }
    for name, (old, new) in edits.items():
        changed = copy_policy(tmp_path, name)
        path = changed / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
        if name == "analytics.toml":
            path.write_text(text.replace('title = "Analytics"', 'title = "Statistics"'))
        assert load_policy(changed).revision != base, name


def test_the_revision_of_a_policy_without_new_fields_is_unchanged() -> None:
    """The example policy's revision as the version before the archive computes it for the
    same files (its purposes were reworded since, which asks visitors again as it should):
    consent given before the archive existed still counts."""
    assert (
        load_policy(EXAMPLE_POLICY).revision
        == "acbdb47018707bb944a3b2d0028c7349b32d3abbc5c9b910365982714610547c"
    )


# --------------------------------------------------------------------------- consent revisions


def test_revisions_command_lists_shows_and_diffs(tmp_path: Path, store_url: str) -> None:
    a, b = _two_revisions(tmp_path, store_url)
    listed = run_consent("revisions", "--store", store_url, key=None)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["REVISION", "FIRST", "USED", "LAST", "USED", "RECEIPTS", "ARCHIVED"]
    assert lines[1].startswith(a.revision[:16])
    assert lines[1].split()[-2:] == ["1", "yes"]
    assert lines[2].startswith(b.revision[:16])
    assert lines[2].split()[-2:] == ["2", "yes"]

    as_json = run_consent("revisions", "--store", store_url, "--format", "json", key=None)
    data = json.loads(as_json.stdout)
    assert [(r["revision"], r["receipts"]) for r in data] == [(a.revision, 1), (b.revision, 2)]

    shown = run_consent("revisions", "--store", store_url, "--show", a.revision[:8], key=None)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Cookie declaration")
    assert "## Analytics (only with your consent)" in shown.stdout
    assert "Reading statistics" not in shown.stdout
    assert f"`{a.revision[:16]}`" in shown.stdout
    assert "- accept_all: Accept all" in shown.stdout

    german = run_consent(
        "revisions", "--store", store_url, "--show", b.revision[:8], "--language", "de", key=None
    )
    assert "# Cookie-Erklärung" in german.stdout or "Alle akzeptieren" in german.stdout

    shown_json = run_consent(
        "revisions", "--store", store_url, "--show", b.revision, "--format", "json", key=None
    )
    document = json.loads(shown_json.stdout)["documents"][0]["document"]
    assert document["policy"]["categories"]["analytics"]["title"] == "Reading statistics"

    diff = run_consent(
        "revisions", "--store", store_url, "--diff", a.revision[:10], b.revision[:10], key=None
    )
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines()[2:] == [
        "## Policy texts",
        '- categories.analytics.title: "Analytics"',
        '+ categories.analytics.title: "Reading statistics"',
    ]


def test_revisions_command_usage_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/many.db"
    _decide(load_policy(EXAMPLE_POLICY), url, "all")
    store = open_store(url, SIGNER)
    # 17 revisions: two of them share their first hex digit
    for n in range(16):
        changed = copy_policy(tmp_path, f"p{n}")
        path = changed / "analytics.toml"
        path.write_text(path.read_text().replace('title = "Analytics"', f'title = "A{n}"'))
        anyio.run(store.archive_policy, archive_entry(load_policy(changed)))
    known = revisions(store)
    firsts = [r.revision[0] for r in known]
    shared = next(d for d in firsts if firsts.count(d) > 1)
    ambiguous = run_consent("revisions", "--store", url, "--show", shared, key=None)
    assert ambiguous.returncode == 2
    assert "is ambiguous" in ambiguous.stderr
    unknown_prefix = (
        next(d for d in "0123456789abcdef" if d not in firsts)
        if len(set(firsts)) < 16
        else "0" * 20
    )
    unknown = run_consent("revisions", "--store", url, "--show", unknown_prefix, key=None)
    assert unknown.returncode == 2
    assert "no revision starting with" in unknown.stderr
    not_hex = run_consent("revisions", "--store", url, "--show", "zz", key=None)
    assert not_hex.returncode == 2
    # a revision only receipts name: known, but no texts
    record_receipts(url, [make_receipt(revision="0123" * 16)])
    missing = run_consent("revisions", "--store", url, "--show", "0123" * 16, key=None)
    assert missing.returncode == 1
    assert "not archived" in missing.stderr
    with pytest.raises(LookupError):
        find_revision(known, "")


# --------------------------------------------------------------------------- exports


def _export(url: str, path: Path, *extra: str) -> None:
    done = run_consent(
        "export", "--store", url, "--with-policies", "--output", str(path), *extra, key=None
    )
    assert done.returncode == 0, done.stderr


def _verify_file(path: Path) -> tuple[bool, list[str]]:
    result = verify_file(path, SIGNER)
    return result.ok, [f.line() for f in result.findings]


def test_a_csv_export_of_a_sites_log_verifies(tmp_path: Path, store_url: str) -> None:
    """A site's log holds its policy record (no subject) and receipts with empty cells (no
    refusals, no page): the CSV export of it verifies as it was written."""
    _decide(EXAMPLE_POLICY, store_url, "all", [])
    path = tmp_path / "log.csv"
    done = run_consent(
        "export", "--store", store_url, "--format", "csv", "--output", str(path), key=None
    )
    assert done.returncode == 0, done.stderr
    assert _verify_file(path) == (True, [])
    checked = run_consent("verify", "--file", str(path), key=TEST_KEY)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_export_with_policies_carries_and_verifies_them(tmp_path: Path, store_url: str) -> None:
    a, b = _two_revisions(tmp_path, store_url)
    path = tmp_path / "export.jsonl"
    _export(store_url, path)
    lines = path.read_text().splitlines()
    carried = [json.loads(line)["archived_policy"] for line in lines[:2]]
    # (in the order they were archived; both within one second here, so either order)
    assert sorted(c["revision"] for c in carried) == sorted([a.revision, b.revision])
    assert all(c["record"]["event"] == "policy" for c in carried)
    assert _verify_file(path) == (True, [])
    checked = run_consent("verify", "--file", str(path), key=TEST_KEY)
    assert checked.returncode == 0, checked.stdout

    # a filtered export carries the revisions its receipts name, and only those (the one
    # refusal was made under B)
    only_b = tmp_path / "b.jsonl"
    _export(store_url, only_b, "--event", "refused")
    heads = [json.loads(line) for line in only_b.read_text().splitlines()]
    assert [h["archived_policy"]["revision"] for h in heads if "archived_policy" in h] == [
        b.revision
    ]
    assert _verify_file(only_b) == (True, [])


def test_an_edited_text_in_an_export_is_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/consent.db"
    a, _ = _two_revisions(tmp_path, url)
    path = tmp_path / "export.jsonl"
    _export(url, path)
    lines = path.read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if a.revision in line)  # A's carried text
    first = json.loads(lines[at])
    # the text edited and its digest recomputed; the revision made to match as well
    body = first["archived_policy"]["body"].replace('"Analytics"', '"Statistics"')
    document = json.loads(body)
    from consent.policy import revision_of

    document["revision"] = revision_of(document["policy"])
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    first["archived_policy"].update(
        body=body,
        digest=hashlib.sha256(body.encode()).hexdigest(),
        revision=document["revision"],
    )
    lines[at] = json.dumps(first, ensure_ascii=False) + "\n"
    path.write_text("".join(lines))
    ok, found = _verify_file(path)
    assert not ok
    assert any("signed record names another text" in line for line in found), found
    assert any(f"names revision {a.revision[:16]}" in line for line in found), found


def test_an_export_missing_a_carried_revision_is_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/consent.db"
    _, b = _two_revisions(tmp_path, url)
    path = tmp_path / "export.jsonl"
    _export(url, path)
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if b.revision not in line or "archived_policy" not in line]
    assert len(kept) == len(lines) - 1
    path.write_text("".join(kept))
    ok, found = _verify_file(path)
    assert not ok
    assert sum("whose texts the export does not carry" in line for line in found) == 2


def test_with_policies_needs_jsonl(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/consent.db"
    _decide(load_policy(EXAMPLE_POLICY), url, "all")
    done = run_consent("export", "--store", url, "--with-policies", "--format", "csv", key=None)
    assert done.returncode == 2
    assert "--with-policies needs --format jsonl" in done.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_counts_the_receipts_that_verify_counts(
    tmp_path: Path, store_url: str, fmt: str
) -> None:
    """A log holds policy records (no subject) beside its receipts: the export reports the
    receipts, the number ``verify`` gives for the store and for the file."""
    _two_revisions(tmp_path, store_url)  # 3 receipts under two revisions: 2 policy records
    path = tmp_path / f"log.{fmt}"
    done = run_consent(
        "export", "--store", store_url, "--format", fmt, "--output", str(path), key=None
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"Exported 3 receipts to {path}"
    for source in (["--store", store_url], ["--file", str(path)]):
        checked = run_consent("verify", *source, key=TEST_KEY)
        assert checked.stdout.splitlines()[0] == "OK: 3 receipts verified", checked.stdout
