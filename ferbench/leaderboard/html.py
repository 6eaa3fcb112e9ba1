"""Static HTML pages of the leaderboard: the markdown pages of :mod:`~ferbench.leaderboard.pages`
rendered as ``index.html``, ``<protocol-id>.html`` and ``sensitivity.html``.

The HTML is made from the very markdown text the ``.md`` pages hold (CommonMark with GitHub
tables, by markdown-it-py, raw HTML in the text escaped), so both show the same numbers. Each
page stands alone: the CSS and a small script are inline, pictures are linked by relative path,
links between pages point at the ``.html`` files, and nothing is fetched from elsewhere, so the
pages work offline and from a ``file://`` URL. Clicking a table header sorts the table by that
column, ascending first, again for descending: numerically when every cell of the column that
is not ``-`` starts with a number (its ``data-sort`` attribute), as text otherwise; ``-`` cells
stay last.
"""

from __future__ import annotations

import html
import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")

# A cell's sort key: its leading number, e.g. 85.50 of "85.50 ± 3.03 [83.10, 87.90]", 65000 of
# "65,000", 2.9e6 of "2.9M" (K/M/G = 10^3/10^6/10^9), 1 of the rank group "1-3", 0.01 of "p=0.01 *".
LEADING_NUMBER = re.compile(r"(?:p=)?([-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?)([KMG](?![A-Za-z]))?")
SUFFIXES = {"K": 1e3, "M": 1e6, "G": 1e9}

STYLE = """\
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 110rem; padding: 0 1rem;
       line-height: 1.45; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; display: block; overflow-x: auto; }
th, td { border: 1px solid #c8c8c8; padding: 0.25rem 0.5rem; vertical-align: top; }
th { background: #eef1f5; cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #f8f8f8; }
img { max-width: min(100%, 60rem); height: auto; margin: 0.25rem 0; }
code { background: #f1f1f1; padding: 0 0.2rem; }
nav { margin-bottom: 1rem; }
"""

SCRIPT = """\
(function () {
  "use strict";
  function missing(cell) { return cell.textContent.trim() === "-"; }
  function sortTable(table, header, column) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var numeric = rows.every(function (row) {
      var cell = row.cells[column];
      return !cell || missing(cell) || cell.hasAttribute("data-sort");
    });
    rows.sort(function (a, b) {
      var x = a.cells[column], y = b.cells[column];
      var xMissing = !x || missing(x), yMissing = !y || missing(y);
      if (xMissing || yMissing) { return (xMissing ? 1 : 0) - (yMissing ? 1 : 0); }
      var order = numeric ? parseFloat(x.getAttribute("data-sort")) - parseFloat(y.getAttribute("data-sort"))
                          : x.textContent.trim().localeCompare(y.textContent.trim());
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
    if (!table.tHead) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.title = "sort by this column";
      header.addEventListener("click", function () { sortTable(table, header, column); });
    });
  });
}());
"""


def html_pages(markdown: dict[str, str]) -> dict[str, str]:
    """``<name>.html -> HTML`` for each ``<name>.md -> markdown`` page; every page but the
    index gets a link back to ``index.html``."""
    return {f"{PurePosixPath(name).stem}.html": render_page(text, index_link=name != "index.md")
            for name, text in markdown.items()}


def render_page(markdown_text: str, index_link: bool = True) -> str:
    """One standalone HTML page of ``markdown_text``: titled by its first heading, links to
    ``.md`` pages pointed at their ``.html`` twins, table cells given their sort keys."""
    tokens = MARKDOWN.parse(markdown_text)
    for token in _with_children(tokens):
        if token.type == "link_open":
            token.attrSet("href", html_target(str(token.attrGet("href"))))
    for opening, inline in zip(tokens, tokens[1:]):
        key = sort_key(inline.content) if opening.type == "td_open" else None
        if key is not None:
            opening.attrSet("data-sort", repr(key))
    title = next((inline.content for heading, inline in zip(tokens, tokens[1:]) if heading.type == "heading_open"),
                 "ferbench leaderboard")
    nav = '<nav><a href="index.html">ferbench leaderboard</a></nav>\n' if index_link else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n{nav}"
            f"{MARKDOWN.renderer.render(tokens, MARKDOWN.options, {})}"
            f"<script>\n{SCRIPT}</script>\n</body>\n</html>\n")


def sort_key(cell: str) -> float | None:
    """The number a cell sorts by (see :data:`LEADING_NUMBER`), or None when it does not start
    with one."""
    match = LEADING_NUMBER.match(cell.strip())
    if match is None:
        return None
    return float(match.group(1).replace(",", "")) * SUFFIXES.get(match.group(2) or "", 1.0)


def html_target(href: str) -> str:
    """A relative link to a ``.md`` page turned into one to its ``.html`` twin; others unchanged."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or not parts.path.endswith(".md"):
        return href
    return parts._replace(path=parts.path[: -len(".md")] + ".html").geturl()


def _with_children(tokens: list[Token]) -> list[Token]:
    """``tokens`` and the inline tokens nested in them, in document order."""
    return [t for token in tokens for t in (token, *(token.children or []))]
