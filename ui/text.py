"""Text from data, files and URLs shown as text: the one escaping helper for markdown and HTML.

Streamlit renders markdown in st.markdown, st.caption, st.subheader, alerts, toasts, expander and
widget labels, with GitHub extras (bare URLs become links), ``:red[...]`` colour and ``:material/x:``
icon directives and ``$...$`` maths.  A patient named ``[click](https://x)`` or a note ``![](http://x)``
would otherwise become a live link or an external image request on a shared screen.  Every value
that comes from imported data, an uploaded file's name, a user's display name or a URL goes through
``md`` (inside markdown) or ``html_text`` (inside ``st.html`` / ``unsafe_allow_html``) before it is put
into such a string; page-authored formatting around it (``**bold**``) still works.
See docs/security.md.
"""

from __future__ import annotations

import html
import re
from typing import Any

# Backslash-escaped ASCII punctuation reads as itself in CommonMark.  Escaped here: what makes links and
# images ("[" "]", "<" autolinks), inline HTML ("<" ">", "&" entities), emphasis and code ("*" "_" "~" "`"),
# maths ("$"), e-mail autolinks ("@") and headings ("#"); a ":" followed by a non-space (so "https://x" and
# ":material/x:" / ":red[...]" directives do not form); the "." of "www." (GFM links bare "www.x.org").
# Ordinary sentences ("Check only: no problems found.") come out unchanged.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>~$&@#|])|(:)(?=\S)|(?<=[wW]{3})(\.)")
_LEADING_MARKER = re.compile(r"^(\s*)([-+=>]|\d+(?=[.)]))")  # list, quote or setext marker at the start
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def md(value: Any) -> str:
    """``value`` as literal text inside a markdown string (one line; None reads as an empty string)."""
    if value is None:
        return ""
    text = _LINE_BREAKS.sub(" ", str(value))
    text = _MD_SPECIAL.sub(lambda m: "\\" + (m.group(1) or m.group(2) or m.group(3)), text)
    return _LEADING_MARKER.sub(
        lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit() else "\\" + m.group(2)), text
    )


def html_text(value: Any) -> str:
    """``value`` as literal text inside HTML (``<``, ``>``, ``&`` and quotes escaped)."""
    return "" if value is None else html.escape(str(value), quote=True)
