"""Issue 13 item 5 (data part): text from data, files and display names is shown as text.

ui/text.py is the one helper; the browser test (tests/test_browser_privacy.py) shows that a patient
named ``[click](https://x)`` and a note ``![](http://x/b.png)`` render no link and no image on the Audit
page; here the helper itself and the user card (st.html) through AppTest."""

from __future__ import annotations

import pytest

from ccm_core.security import auth
from ccm_core.storage import db
from ui.text import html_text, md

from apptest_utils import app_env, ensure_role_users, login_as


@pytest.mark.parametrize(
    "raw, escaped",
    [
        ("[click](https://x)", r"\[click\](https\://x)"),
        ("![](http://x/b.png)", r"!\[\](http\://x/b.png)"),
        ("<img src=x onerror=alert(1)>", r"\<img src=x onerror=alert(1)\>"),
        ("see www.example.org", r"see www\.example.org"),
        ("mail a@b.com", r"mail a\@b.com"),
        (":red[big] :material/home:", r"\:red\[big\] \:material/home:"),
        ("**bold** _it_ `code` ~~x~~ $x$", r"\*\*bold\*\* \_it\_ \`code\` \~\~x\~\~ \$x\$"),
        ("# heading", r"\# heading"),
        ("- item", r"\- item"),
        ("1. item", r"1\. item"),
        ("> quote", r"\> quote"),
        ("line one\n# two\r\n[x](y)", r"line one \# two \[x\](y)"),
        ("&lt;b&gt;", r"\&lt;b\&gt;"),
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_markdown_specials_are_escaped(raw, escaped):
    assert md(raw) == escaped


def test_ordinary_text_is_unchanged():
    for text in (
        "Check only, nothing written: no problems found.",
        "Called pt re lisinopril; BP 150/90.",
        "Medicare Part B",
        "O'Brien-Smith, Ana",
        "2025-03-04",
        "3 row(s) rejected (download them).",
    ):
        assert md(text) == text
    assert md(None) == "" and md(12) == "12"


def test_html_text_escapes_tags_and_quotes():
    assert html_text("<img src=x onerror=\"a()\"><a href='https://x'>y</a> & co") == (
        "&lt;img src=x onerror=&quot;a()&quot;&gt;&lt;a href=&#x27;https://x&#x27;&gt;y&lt;/a&gt; &amp; co"
    )


def test_user_card_shows_a_display_name_as_text(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'card.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    users = ensure_role_users(engine)
    evil = '<img src="http://x/b.png"><a href="https://x">Ada</a>'
    with engine.begin() as conn:
        conn.execute(
            auth.app_user.update().where(auth.app_user.c.username == users["program_lead"][0]).values(display_name=evil)
        )
    app_env(monkeypatch, url)
    at = login_as("program_lead")
    cards = [h.proto.body for h in at.get("html") if h.proto.body.startswith("<div class='ccm-user-card'>")]
    assert len(cards) == 1
    assert "<img" not in cards[0] and "<a " not in cards[0]
    assert "&lt;img src=&quot;http://x/b.png&quot;&gt;&lt;a href=&quot;https://x&quot;&gt;Ada" in cards[0]
    engine.dispose()
