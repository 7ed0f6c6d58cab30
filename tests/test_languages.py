"""The banner's languages: ``[banner] languages`` and the site's words (``banner/<lang>.json``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from consent import ConsentMiddleware
from consent.declaration import declaration_data, render_html
from consent.i18n import bundled_keys
from consent.policy import PolicyError, load_policy

from .helpers import EXAMPLE_POLICY, copy_policy, run_consent

KEY = "language-test-key-0123456789abcdef"


def with_words(policy: Path, languages: str | None, **files: dict[str, object]) -> Path:
    if languages is not None:
        site = policy / "site.toml"
        text = site.read_text(encoding="utf-8")
        site.write_text(text.replace("[banner]\n", f"[banner]\nlanguages = {languages}\n", 1))
    (policy / "banner").mkdir(exist_ok=True)
    for lang, words in files.items():
        (policy / "banner" / f"{lang}.json").write_text(json.dumps(words), encoding="utf-8")
    return policy


SPANISH = {"accept_all": "Aceptar todo", "reject_all": "Rechazar todo", "save": "Guardar"}


def page(request: Request) -> Response:
    return HTMLResponse("<html><head></head><body><p>hi</p></body></html>")


@pytest.fixture
def spanish_site(tmp_path: Path) -> Iterator[TestClient]:
    policy = with_words(
        copy_policy(tmp_path),
        '["en", "es"]',
        es=SPANISH,
        en={"accept_all": "Yes to all"},
    )
    app = ConsentMiddleware(
        Starlette(routes=[Route("/", page)]),
        policy=policy,
        secret_key=KEY,
        store=f"sqlite:///{tmp_path / 'consent.db'}",
    )
    with TestClient(app, base_url="http://testserver") as client:
        yield client


def test_the_sites_words_are_served_over_the_bundled_ones(spanish_site: TestClient) -> None:
    es = spanish_site.get("/_consent/i18n/es.json").json()
    assert es["accept_all"] == "Aceptar todo"
    assert es["customize"] == "Customize"  # a key es.json lacks: English
    assert set(es) == bundled_keys()
    en = spanish_site.get("/_consent/i18n/en.json").json()
    assert en["accept_all"] == "Yes to all"
    assert en["reject_all"] == "Reject all"
    # Not offered: no file, unless bundled (a German page's banner finds its file, then
    # follows the state's language).
    assert spanish_site.get("/_consent/i18n/it.json").status_code == 404
    assert spanish_site.get("/_consent/i18n/de.json").json()["accept_all"] == "Alle akzeptieren"


def test_only_the_offered_languages_are_negotiated(spanish_site: TestClient) -> None:
    def language(accept: str, query: str = "") -> str:
        state = spanish_site.get("/_consent" + query, headers={"Accept-Language": accept})
        return str(state.json()["language"])

    assert language("es-ES,es;q=0.9") == "es"
    assert language("de-DE,de;q=0.9") == "en"
    assert language("de-DE, es;q=0.5") == "es"
    assert language("es", "?lang=fr") == "es"


def test_pages_without_javascript_use_the_sites_words(spanish_site: TestClient) -> None:
    html = spanish_site.get("/", headers={"Accept-Language": "es"}).text
    assert ">Aceptar todo</button>" in html
    assert ">Guardar</button>" in html
    declaration = spanish_site.get(
        "/_consent/declaration", headers={"Accept-Language": "es", "Accept": "text/html"}
    )
    assert ">Rechazar todo</button>" in declaration.text


def test_the_words_do_not_change_the_revision(tmp_path: Path) -> None:
    before = load_policy(EXAMPLE_POLICY).revision
    after = load_policy(
        with_words(copy_policy(tmp_path), '["en", "es"]', es=SPANISH, en={"title": "Hello"})
    )
    assert after.revision == before


def test_by_default_every_language_with_words_is_offered(tmp_path: Path) -> None:
    policy = load_policy(with_words(copy_policy(tmp_path), None, es=SPANISH))
    assert {"en", "de", "fr", "es"} <= policy.offered_languages
    bare = load_policy(EXAMPLE_POLICY)
    assert "es" not in bare.offered_languages


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("Spanish.json", "{}", "is not a language code"),
        ("es.json", "[1]", "must be a JSON object"),
        ("es.json", "{", "not a readable JSON file"),
        ("es.json", '{"title": 3}', "title: must be text"),
    ],
)
def test_bad_word_files_are_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    policy = copy_policy(tmp_path)
    (policy / "banner").mkdir()
    (policy / "banner" / name).write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert any(f"banner/{name}" in e and message in e for e in caught.value.errors)


def test_a_regional_language_in_the_setting_is_refused(tmp_path: Path) -> None:
    policy = with_words(copy_policy(tmp_path), '["en", "de-AT"]')
    with pytest.raises(PolicyError) as caught:
        load_policy(policy)
    assert any("banner.languages" in e and "'de-AT'" in e for e in caught.value.errors)


def test_check_reports_missing_words_per_language(tmp_path: Path) -> None:
    policy = with_words(
        copy_policy(tmp_path),
        '["en", "de", "es", "it"]',
        es={**SPANISH, "acept_all": "typo"},
        nl={"title": "Cookies"},
    )
    result = run_consent("check", str(policy), key=None)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "languages    de, en, es, it (the site's words: banner/es.json, banner/nl.json)" in out
    missing = len(bundled_keys()) - len(SPANISH)
    assert f"warning: language 'es': {missing} of {len(bundled_keys())} words missing" in out
    assert "(banner/es.json); the banner shows them in English: always_on, " in out
    assert "warning: banner/es.json: unknown keys (nothing reads them): acept_all" in out
    assert "warning: language 'it': " in out
    assert "(no banner/it.json)" in out
    assert "warning: banner/nl.json: 'nl' is not in [banner] languages" in out
    # Bundled languages lack nothing: no warning for de or en.
    assert "language 'de'" not in out
    assert "language 'en'" not in out
    # (--ignore: the example's own catalog warning)
    strict = run_consent("check", str(policy), "--strict", "--ignore", "sessionid", key=None)
    assert strict.returncode == 1


def test_check_is_quiet_about_a_complete_language(tmp_path: Path) -> None:
    complete = dict.fromkeys(bundled_keys(), "x")
    policy = with_words(copy_policy(tmp_path), None, es=complete)
    result = run_consent("check", str(policy), "--strict", "--ignore", "sessionid", key=None)
    assert result.returncode == 0, result.stdout
    assert "warning" not in result.stdout
    assert "banner/es.json" in result.stdout


def test_cookie_rules_are_described_in_the_sites_words(tmp_path: Path) -> None:
    """The declaration's "names starting with ..." comes from the same words as the banner: a
    language the site adds, and the site's own English wording."""
    policy = load_policy(
        with_words(
            copy_policy(tmp_path),
            '["en", "es"]',
            es={
                **SPANISH,
                "rule_name_and_starting": "{name} y los nombres que empiezan por {prefix}",
            },
            en={"rule_name_and_starting": "{name}, and any name that begins with {prefix}"},
        )
    )

    def shown(language: str) -> list[str]:
        data = declaration_data(policy, language)
        return [c["display"] for cat in data["categories"] for c in cat["cookies"]]

    assert "_ga y los nombres que empiezan por _ga_" in shown("es")
    assert "_ga, and any name that begins with _ga_" in shown("en")
    assert "_ga und Namen, die mit _ga_ beginnen" in shown("de")  # (the bundled German)
    html = render_html(policy, "es")
    assert "<code>_ga</code> y los nombres que empiezan por <code>_ga_</code>" in html
