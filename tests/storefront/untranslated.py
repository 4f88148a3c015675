"""Find text a zh-CN page shows in English: what a buyer or staff member reads, not codes.

Visible text is every text node outside <script>, <style> and elements marked
`translate="no"` (the HTML way to say "a code, a name, an amount: leave it"): SKUs,
order numbers, usernames, the site's own name and contact. A run of two or more Latin
letters left after that (outside tokens with a digit: order numbers, amounts) is English unless it is a unit or acronym Chinese text uses
as is (CSV, PDF, QQ, API) or a time zone abbreviation after a time.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

ALLOWED = {"CSV", "PDF", "QQ", "API", "ID", "Steam", "VIP"}
TIME = re.compile(r"\d{2}:\d{2} [A-Z]{2,5}\b")
DIGIT = re.compile(r"[0-9]")  # a token with a digit is a code or an amount (order number, SKU), not prose
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: is its text hidden from this check
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        hidden = tag in ("script", "style") or dict(attrs).get("translate") == "no"
        if tag in VOID:
            if not hidden and not (self.stack and self.stack[-1]):
                self._attributes(tag, attrs)
            return
        self.stack.append(hidden or (bool(self.stack) and self.stack[-1]))
        if not self.stack[-1]:
            self._attributes(tag, attrs)

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Attributes a person reads: placeholders, labels, titles, button values."""
        values = dict(attrs)
        for name in ("placeholder", "aria-label", "title", "alt"):
            if values.get(name):
                self.texts.append(str(values[name]))
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.texts.append(str(values["value"]))

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not (self.stack and self.stack[-1]):
            self.texts.append(data)


def english_words(html: str, allowed: set[str] = ALLOWED) -> list[str]:
    """The Latin words a page shows outside codes; [] for a page fully in Chinese."""
    parser = _Text()
    parser.feed(html)
    found = []
    for text in parser.texts:
        tokens = TIME.sub("", text).split()
        found += [w for token in tokens if not DIGIT.search(token) for w in WORD.findall(token) if w not in allowed]
    return found
