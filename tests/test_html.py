"""The static HTML leaderboard: sort keys, links, escaping, and a real headless Chromium that loads a
page from a file:// URL and sorts a table by clicking its header."""

import re
import shutil
from pathlib import Path

import pytest
from test_leaderboard import A, B, C, make_run
from test_plots import real_confusion_pictures

from ferbench.leaderboard import write_leaderboard
from ferbench.leaderboard.html import html_target, render_page, sort_key

CHROMIUM = Path("/usr/bin/chromium") if Path("/usr/bin/chromium").is_file() else shutil.which("chromium")


@pytest.fixture
def leaderboard(tmp_path):
    """Three ranked runs (accuracy 85.50, 80.00, 79.20), one incomplete; real confusion PNGs."""
    runs = tmp_path / "runs"
    make_run(runs, "ckplus_7cls_si", "model_b", B)
    make_run(runs, "ckplus_7cls_si", "model_a", A, reported=[80.0])
    make_run(runs, "ckplus_7cls_si", "model_c", C)
    make_run(runs, "ckplus_7cls_si", "model_d", [0.99] * 3, complete=False)
    real_confusion_pictures(runs)
    out = tmp_path / "lb"
    write_leaderboard([runs], out)
    return out


@pytest.mark.parametrize(("cell", "key"), [
    ("85.50 ± 3.03 [83.10, 87.90]", 85.5), ("65,000", 65000.0), ("2.9M", 2.9e6), ("1-3", 1.0), ("+5.50", 5.5),
    ("-2.05", -2.05), ("p=0.01 * (n=10)", 0.01), ("1.2e-05", 1.2e-5), ("10 × 1", 10.0),
    ("-", None), ("model_a", None), ("resnet18", None), ("[png](confusion/x.png)", None)])
def test_sort_keys_are_the_leading_number(cell, key):
    assert sort_key(cell) == key


def test_links_to_markdown_pages_point_at_the_html_pages():
    assert html_target("ckplus_7cls_si.md") == "ckplus_7cls_si.html"
    assert html_target("sensitivity.md#ckplus") == "sensitivity.html#ckplus"
    assert html_target("confusion/ckplus_7cls_si/model_a.png") == "confusion/ckplus_7cls_si/model_a.png"
    assert html_target("https://example.org/a.md") == "https://example.org/a.md"


def test_every_string_is_escaped():
    page = render_page("# a <b>&</b>\n\nmodel <script>alert(1)</script>\n\n| x |\n|---|\n| <i>1</i> |\n")
    assert "<title>a &lt;b&gt;&amp;&lt;/b&gt;</title>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;i&gt;1&lt;/i&gt;" in page
    assert page.count("<script>") == 1  # the page's own sorting script


def test_the_pages_stand_alone(leaderboard):
    names = sorted(p.name for p in leaderboard.glob("*.html"))
    assert names == ["ckplus_7cls_si.html", "index.html", "sensitivity.html"]
    index = (leaderboard / "index.html").read_text()
    assert 'href="ckplus_7cls_si.html"' in index and 'href="sensitivity.html"' in index
    page = (leaderboard / "ckplus_7cls_si.html").read_text()
    assert "<link" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    # the ranking's accuracy cells carry their numbers for sorting
    assert '<td data-sort="85.5">85.50 ± 3.03</td>' in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert "confusion/ckplus_7cls_si/model_a.png" in sources and "plots/ckplus_7cls_si/accuracy_params.png" in sources
    assert all((leaderboard / source).is_file() for source in sources)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (/usr/bin/chromium or chromium on PATH)")
def test_a_browser_loads_the_page_offline_and_sorts_a_column(leaderboard):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless=new", "--no-sandbox"])
        try:
            page = browser.new_page()
            errors = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            requested = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto((leaderboard / "ckplus_7cls_si.html").as_uri(), wait_until="load")
            assert page.title() == "ckplus_7cls_si"
            assert all(url.startswith("file://") for url in requested), requested
            assert page.eval_on_selector_all("img", "images => images.every(i => i.complete && i.naturalWidth > 0)")
            ranking = page.locator("table").first

            headers = ranking.locator("thead th").all_inner_texts()

            def column(name):
                return ranking.locator(f"tbody tr td:nth-child({headers.index(name) + 1})").all_inner_texts()

            assert column("model") == ["model_a", "model_b", "model_c"]
            accuracy = ranking.locator("thead th").nth(headers.index("accuracy"))
            accuracy.click()
            assert column("model") == ["model_c", "model_b", "model_a"]
            assert column("accuracy") == ["79.20 ± 3.79", "80.00 ± 0.00", "85.50 ± 3.03"]
            assert accuracy.get_attribute("aria-sort") == "ascending"
            accuracy.click()
            assert column("model") == ["model_a", "model_b", "model_c"]
            assert accuracy.get_attribute("aria-sort") == "descending"
            model = ranking.locator("thead th").nth(headers.index("model"))
            model.click()
            model.click()  # text column, descending
            assert column("model") == ["model_c", "model_b", "model_a"]
            assert errors == []
        finally:
            browser.close()
