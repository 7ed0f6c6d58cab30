"""The demo clinic's words: page texts in English and German, the articles, the fixed names."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
POLICY_DIR = HERE / "policy"
STATIC_DIR = HERE / "static"
YEAR = 365 * 86400
#: Where the stand-in video platform answers (outside the middleware, like a third party).
VIDEO_PREFIX = "/video-platform"
LANGUAGES = ("en", "de")

# ---------------------------------------------------------------------------------------- text

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "clinic": "Lindenhof Clinic",
        "tagline": "Rehabilitation and orthopaedics in Berlin-Mitte",
        "nav_research": "Research",
        "nav_newsletter": "Newsletter",
        "nav_contact": "Ask us",
        "nav_policy": "Cookie policy",
        "other_language": "Deutsch",
        "home_title": "Research news",
        "home_h1": "Research news from the Lindenhof Clinic",
        "home_intro": "What our doctors and therapists are learning, written for patients and "
        "their families. Every article names the study behind it and what it cannot tell us.",
        "read_more": "Read the article",
        "evening_h": "Information evening: the pacing trial",
        "evening_p": "Thursday, 4 February, 18:00, lecture hall B. Our rehabilitation team explains "
        "the new trial on pacing after long COVID and who can take part. No registration needed.",
        "evening_link": "Questions about taking part? Ask us",
        "newsletter_teaser": "One e-mail a month with new research and the dates of our "
        "information evenings.",
        "newsletter_link": "Subscribe to the newsletter",
        "video_title": "Video: pacing in daily life",
        "video_caption": "Our physiotherapist Jana Krüger shows how to plan a day in small blocks "
        "(4 minutes).",
        "video_direct": "Open the video page instead",
        "newsletter_title": "Newsletter",
        "newsletter_intro": "One e-mail a month with new research and the dates of our "
        "information evenings. You can unsubscribe with one click in every e-mail.",
        "contact_title": "Ask us",
        "contact_intro": "Questions about a treatment, a study or taking part in a trial? Our "
        "patient service answers within two working days. Please do not send medical "
        "emergencies here: call 112.",
        "email": "E-mail",
        "name": "Name",
        "question": "Your question",
        "topic": "Topic",
        "topic_trial": "Taking part in a study",
        "topic_treatment": "A treatment",
        "topic_other": "Something else",
        "send": "Send",
        "subscribe": "Subscribe",
        "thanks": "Thank you",
        "thanks_newsletter": "Thank you: please confirm the link we sent to your e-mail address.",
        "thanks_contact": "Thank you: our patient service will answer within two working days.",
        "expired_h": "The form expired",
        "expired_p": "Please go back, reload the page and send it again.",
        "policy_title": "Cookie policy",
        "policy_intro": "This site uses cookies only for what you allow. Necessary cookies keep "
        "the forms working and remember your choice; everything else waits for your consent.",
        "choice_none": "You have not made a choice yet.",
        "choice_some": "You allowed",
        "choice_only_necessary": "You allowed only the necessary cookies.",
        "change": "Change cookie settings",
        "receipt": "Show your consent receipt",
        "server_sees_h": "What our server sees",
        "server_sees_p": "The cookies below are the ones your browser sent that reached the "
        "clinic's application on this request. Cookies of categories you have not allowed are "
        "removed before the application sees them.",
        "no_cookies": "No cookies reached the application.",
        "cookie": "Cookie",
        "category": "Category",
        "footer_address": "Lindenhof Clinic gGmbH · Lindenallee 12 · 10115 Berlin",
        "footer_settings": "Cookie settings",
        "skip": "Skip to content",
        "text_size": "Text size",
        "text_normal": "Normal",
        "text_large": "Large",
        "pref_blocked": "We can remember your text size and language only if you allow "
        "preference cookies.",
        "not_found": "Page not found",
        "not_found_p": "This page does not exist (any more).",
        "home_link": "Back to the research news",
    },
    "de": {
        "clinic": "Klinik Lindenhof",
        "tagline": "Rehabilitation und Orthopädie in Berlin-Mitte",
        "nav_research": "Forschung",
        "nav_newsletter": "Newsletter",
        "nav_contact": "Fragen Sie uns",
        "nav_policy": "Cookie-Richtlinie",
        "other_language": "English",
        "home_title": "Aus der Forschung",
        "home_h1": "Neues aus der Forschung der Klinik Lindenhof",
        "home_intro": "Was unsere Ärztinnen, Ärzte und Therapeuten herausfinden, geschrieben für "
        "Patientinnen, Patienten und Angehörige. Jeder Artikel nennt die Studie dahinter und was "
        "sie nicht beantworten kann.",
        "read_more": "Zum Artikel",
        "evening_h": "Informationsabend: die Pacing-Studie",
        "evening_p": "Donnerstag, 4. Februar, 18 Uhr, Hörsaal B. Unser Reha-Team stellt die neue "
        "Studie zum Pacing nach Long COVID vor und erklärt, wer teilnehmen kann. Ohne Anmeldung.",
        "evening_link": "Fragen zur Teilnahme? Schreiben Sie uns",
        "newsletter_teaser": "Einmal im Monat eine E-Mail mit neuen Ergebnissen und den Terminen "
        "unserer Informationsabende.",
        "newsletter_link": "Newsletter abonnieren",
        "video_title": "Video: Pacing im Alltag",
        "video_caption": "Unsere Physiotherapeutin Jana Krüger zeigt, wie man einen Tag in kleinen "
        "Blöcken plant (4 Minuten).",
        "video_direct": "Stattdessen die Videoseite öffnen",
        "newsletter_title": "Newsletter",
        "newsletter_intro": "Einmal im Monat eine E-Mail mit neuen Ergebnissen und den Terminen "
        "unserer Informationsabende. Abmelden können Sie sich mit einem Klick in jeder E-Mail.",
        "contact_title": "Fragen Sie uns",
        "contact_intro": "Fragen zu einer Behandlung, einer Studie oder zur Teilnahme? Unser "
        "Patientenservice antwortet innerhalb von zwei Werktagen. Bitte keine Notfälle: wählen "
        "Sie 112.",
        "email": "E-Mail",
        "name": "Name",
        "question": "Ihre Frage",
        "topic": "Thema",
        "topic_trial": "Teilnahme an einer Studie",
        "topic_treatment": "Eine Behandlung",
        "topic_other": "Etwas anderes",
        "send": "Senden",
        "subscribe": "Abonnieren",
        "thanks": "Vielen Dank",
        "thanks_newsletter": "Vielen Dank: Bitte bestätigen Sie den Link, den wir an Ihre "
        "E-Mail-Adresse geschickt haben.",
        "thanks_contact": "Vielen Dank: Unser Patientenservice antwortet innerhalb von zwei "
        "Werktagen.",
        "expired_h": "Das Formular ist abgelaufen",
        "expired_p": "Bitte gehen Sie zurück, laden Sie die Seite neu und senden Sie es noch einmal.",
        "policy_title": "Cookie-Richtlinie",
        "policy_intro": "Diese Website verwendet Cookies nur für das, was Sie erlauben. Notwendige "
        "Cookies halten die Formulare in Gang und merken sich Ihre Auswahl; alles andere wartet "
        "auf Ihre Einwilligung.",
        "choice_none": "Sie haben noch keine Auswahl getroffen.",
        "choice_some": "Sie haben erlaubt",
        "choice_only_necessary": "Sie haben nur die notwendigen Cookies erlaubt.",
        "change": "Cookie-Einstellungen ändern",
        "receipt": "Ihren Einwilligungsnachweis anzeigen",
        "server_sees_h": "Was unser Server sieht",
        "server_sees_p": "Unten stehen die Cookies Ihres Browsers, die bei dieser Anfrage die "
        "Anwendung der Klinik erreicht haben. Cookies aus Kategorien, die Sie nicht erlaubt haben, "
        "werden vorher entfernt.",
        "no_cookies": "Keine Cookies haben die Anwendung erreicht.",
        "cookie": "Cookie",
        "category": "Kategorie",
        "footer_address": "Klinik Lindenhof gGmbH · Lindenallee 12 · 10115 Berlin",
        "footer_settings": "Cookie-Einstellungen",
        "skip": "Zum Inhalt springen",
        "text_size": "Schriftgröße",
        "text_normal": "Normal",
        "text_large": "Groß",
        "pref_blocked": "Schriftgröße und Sprache können wir uns nur merken, wenn Sie "
        "Einstellungs-Cookies erlauben.",
        "not_found": "Seite nicht gefunden",
        "not_found_p": "Diese Seite gibt es nicht (mehr).",
        "home_link": "Zurück zu den Forschungsnachrichten",
    },
}

ARTICLES: dict[str, dict[str, tuple[str, str, list[str]]]] = {
    "pacing-after-long-covid": {
        "en": (
            "Pacing after long COVID: what our rehabilitation study found",
            "Two thirds of 212 patients had fewer crashes after exertion after twelve weeks.",
            [
                "Since 2024 the Lindenhof Clinic's rehabilitation team has followed 212 patients "
                "with post-COVID fatigue through a twelve-week programme built on pacing: planning "
                "activity in small blocks, resting before exhaustion sets in, and raising the load "
                "only when symptoms stay stable for a week.",
                "After twelve weeks, two thirds of the participants reported fewer crashes after "
                "exertion, and the average distance walked in six minutes rose by 48 metres. "
                "Patients who kept a daily activity diary improved most. The programme did not "
                "help everybody: one participant in five saw no change, and we are now studying "
                "why.",
                "The study is observational and has no control group, so it cannot prove that "
                "pacing caused the improvement. A randomised trial with the Charité begins next "
                "spring; the information evening below explains how to take part.",
            ],
        ),
        "de": (
            "Pacing nach Long COVID: Was unsere Reha-Studie gezeigt hat",
            "Zwei Drittel von 212 Patientinnen und Patienten hatten nach zwölf Wochen seltener "
            "Einbrüche nach Belastung.",
            [
                "Seit 2024 begleitet das Reha-Team der Klinik Lindenhof 212 Patientinnen und "
                "Patienten mit Post-COVID-Fatigue durch ein zwölfwöchiges Programm, das auf Pacing "
                "beruht: Aktivität in kleinen Blöcken planen, ruhen, bevor die Erschöpfung kommt, "
                "und die Belastung erst steigern, wenn die Beschwerden eine Woche lang stabil "
                "bleiben.",
                "Nach zwölf Wochen berichteten zwei Drittel der Teilnehmenden über seltenere "
                "Einbrüche nach Belastung, und die in sechs Minuten gegangene Strecke stieg im "
                "Mittel um 48 Meter. Wer täglich ein Aktivitätstagebuch führte, profitierte am "
                "meisten. Nicht allen hat das Programm geholfen: Bei einer von fünf Personen "
                "änderte sich nichts, und wir untersuchen nun, warum.",
                "Die Studie ist eine Beobachtungsstudie ohne Kontrollgruppe; sie kann nicht "
                "beweisen, dass das Pacing die Besserung bewirkt hat. Im Frühjahr beginnt mit der "
                "Charité eine randomisierte Studie; der Informationsabend unten erklärt, wie man "
                "teilnehmen kann.",
            ],
        ),
    },
    "knee-replacement-recovery": {
        "en": (
            "Walking again after a knee replacement",
            "Daily home exercises brought full bending two weeks sooner.",
            [
                "Most patients walk with crutches on the day after surgery. Our physiotherapists "
                "start with bending exercises in bed and short walks on the ward.",
                "In our 2025 follow-up of 340 patients, those who practised the home exercises "
                "daily reached 110 degrees of flexion two weeks earlier than those who did not. "
                "Pain at rest was the same in both groups after six weeks.",
                "The exercise sheets are handed out on the ward; ask your physiotherapist for the "
                "large-print version if you need it.",
            ],
        ),
        "de": (
            "Wieder gehen nach einer Knieprothese",
            "Tägliche Übungen zu Hause brachten die volle Beugung zwei Wochen früher.",
            [
                "Die meisten Patientinnen und Patienten gehen am Tag nach der Operation mit "
                "Unterarmgehstützen. Unsere Physiotherapie beginnt mit Beugeübungen im Bett und "
                "kurzen Wegen auf der Station.",
                "In unserer Nachbeobachtung von 340 Patientinnen und Patienten aus dem Jahr 2025 "
                "erreichten diejenigen, die täglich zu Hause übten, eine Beugung von 110 Grad zwei "
                "Wochen früher als die anderen. Der Ruheschmerz war nach sechs Wochen in beiden "
                "Gruppen gleich.",
                "Die Übungsblätter bekommen Sie auf der Station; fragen Sie Ihre Physiotherapeutin "
                "nach der Ausgabe in großer Schrift, wenn Sie sie brauchen.",
            ],
        ),
    },
}

VIDEO_SLUG = "pacing-in-daily-life"
VIDEO_ARTICLE = "pacing-after-long-covid"
