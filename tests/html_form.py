"""What a browser would submit from a page's form: its action, hidden fields, options and buttons (the
broker's connect page and the Zoho stand-in's consent page are read the same way)."""

from __future__ import annotations

from html.parser import HTMLParser


class HtmlForm(HTMLParser):
    """The page's form, as a browser sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.options: list[tuple[str, bool]] = []
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value", "")
        elif tag == "option":
            self.options.append((values.get("value", ""), "selected" in values))
        elif tag == "button":
            self.buttons.append((values.get("name", ""), values.get("value", "")))


def read_form(html: str) -> HtmlForm:
    """The form of the page ``html``."""
    form = HtmlForm()
    form.feed(html)
    return form
