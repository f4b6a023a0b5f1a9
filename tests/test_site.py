"""Tests of the course's website (mkdocs.yml, tools/site.py): built, then read in a real browser.

The site is built into a temporary folder as ``make site`` builds it, served on 127.0.0.1, and
every page is opened in headless Chromium (tests/chromium.py), which can reach that address and
nothing else. The browser tests skip only where Chromium is not installed.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from chromium import Chromium, find_chromium

from tools.notebooks import REPO, colab_url

for module in ("mkdocs", "material", "mkdocs_jupyter", "jupyter_server_mathjax"):
    pytest.importorskip(module, reason="the site's tools: pip install -e '.[site]'")

from tools import site  # noqa: E402  (imports mkdocs)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PAGES = ["index.html"] + [f"{notebook.stem}.html" for notebook in NOTEBOOKS]
BUILD_SECONDS = 120  # the target for a build
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"  # the one remote file
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)

# What a reader would see, measured once the page has finished: MathJax done, images decoded.
PAGE_REPORT = r"""
(async () => {
  if (window.MathJax && MathJax.Hub) {
    await new Promise(done => MathJax.Hub.Register.StartupHook("End", done));
    await new Promise(done => MathJax.Hub.Queue(done));
  }
  await Promise.all([...document.images].map(img => img.decode().catch(() => null)));
  const h1 = document.querySelector("article h1");
  const heading = h1 ? h1.cloneNode(true) : null;
  heading?.querySelectorAll(".anchor-link, .headerlink").forEach(a => a.remove());
  // The prose as text, without code, outputs and typeset equations: a `$` left there is TeX
  // that MathJax did not typeset.
  const prose = document.querySelector("article").cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, .MathJax, .MathJax_Display, .MathJax_Preview")
    .forEach(e => e.remove());
  return {
    title: document.title,
    h1: heading ? heading.textContent.trim() : null,
    images: [...document.querySelectorAll("article img")].map(img => ({
      src: img.src.startsWith("data:") ? img.src.slice(0, 30) : img.src,
      alt: img.alt, complete: img.complete, width: img.naturalWidth,
      link: img.closest("a")?.href ?? null})),
    math_sources: document.querySelectorAll('script[type^="math/tex"]').length,
    math_typeset: document.querySelectorAll("span.MathJax").length,
    // A TeX error shows the source (noErrors); an unknown macro shows in red (noUndefined).
    math_errors: document.querySelectorAll(
      `.MathJax_Error, .noError, .MathJax[data-mathml*='mathcolor="red"']`).length,
    prose_dollars: (prose.textContent.match(/.{0,40}\$.{0,40}/g) || []),
    links: [...document.querySelectorAll("a[href]")].map(a => ({
      href: a.href, download: a.hasAttribute("download"), text: a.textContent.trim()})),
    ids: [...document.querySelectorAll("[id]")].map(e => e.id),
  };
})()
"""

# Types QUERY into the search box, as a reader does, until the results list links.
SEARCH = r"""
(async () => {
  const input = document.querySelector("input[data-md-component=search-query]");
  input.focus();
  input.value = QUERY;
  for (let i = 0; i < 200; i++) {  // the worker builds its index first
    input.dispatchEvent(new KeyboardEvent("keyup"));
    const hits = [...document.querySelectorAll("a.md-search-result__link")];
    if (hits.length) return hits.map(a => a.href);
    await new Promise(r => setTimeout(r, 100));
  }
  return [];
})()
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The site as ``make site`` builds it (strict: a broken Markdown link fails), and its time."""
    out = tmp_path_factory.mktemp("site") / "site"
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet"]
        + ["--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=10 * BUILD_SECONDS,
    )
    seconds = time.monotonic() - start
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stdout}\n{result.stderr}"
    return out, seconds


@pytest.fixture(scope="module")
def served(built: tuple[Path, float]) -> Iterator[str]:
    """The built site's address on 127.0.0.1 (a worker that fetches the search index needs it)."""
    handler = functools.partial(_QuietHandler, directory=str(built[0]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium(CHROMIUM) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def reports(browser: Chromium, served: str) -> dict[str, dict[str, Any]]:
    """Every page's report (PAGE_REPORT), with the remote addresses it asked for and its errors."""
    out = {}
    for page in PAGES:
        session = browser.open(served + page)
        report = browser.evaluate(session, PAGE_REPORT)
        requests = browser.session_events(session, "Network.requestWillBeSent")
        report["remote"] = sorted(
            {
                r["request"]["url"]
                for r in requests
                if urlsplit(r["request"]["url"]).scheme in ("http", "https")
                and not r["request"]["url"].startswith(served)
            }
        )
        report["errors"] = [
            e["exceptionDetails"].get("exception", {}).get("description")
            or e["exceptionDetails"].get("text")
            for e in browser.session_events(session, "Runtime.exceptionThrown")
        ]
        browser.close_tab(session)
        out[page] = report
    return out


def _first_heading(notebook: Path) -> str:
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            heading = re.search(r"^# (.+)$", "".join(cell["source"]), flags=re.MULTILINE)
            if heading:
                return heading.group(1).strip()
    raise AssertionError(f"{notebook.name} has no '# title' heading")


def _figures(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(
        "image/png" in output.get("data", {}) for c in cells for output in c.get("outputs", [])
    )


def test_site_builds_within_two_minutes(built: tuple[Path, float]) -> None:
    """``mkdocs build`` of the whole site, nothing executed, takes at most two minutes."""
    print(f"site built in {built[1]:.1f} s")
    assert built[1] <= BUILD_SECONDS, f"the site took {built[1]:.0f} s to build"


def test_site_has_a_page_per_course_notebook_and_nothing_else(built: tuple[Path, float]) -> None:
    """One page and one downloadable copy per solved notebook; no student notebook, no data."""
    out = built[0]
    assert sorted(p.name for p in out.glob("*.html")) == sorted([*PAGES, "404.html"])
    assert sorted(p.name for p in out.rglob("*.ipynb")) == [n.name for n in NOTEBOOKS]
    for notebook in NOTEBOOKS:
        assert (out / notebook.name).read_bytes() == notebook.read_bytes()
    assert (out / site.MATHJAX_DIR / "MathJax.js").is_file()


def test_front_page_is_the_course_map_with_site_links() -> None:
    """The README up to its course map; notebook links point at pages, other links at GitHub."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    page = site.front_page(readme)
    assert page.startswith("# DeepLabv3+ from scratch\n")
    assert "## Course map" in page and "## Quick start" not in page
    for notebook in NOTEBOOKS:
        assert f"]({notebook.name})" in page
    assert "](notebooks/" not in page and "](#" not in page
    assert f"](https://github.com/{REPO}#results)" in page


def test_front_page_retargets_each_kind_of_link() -> None:
    """A notebook link keeps its anchor; a file of the repository goes to its GitHub page."""
    readme = (
        "# T\n\n[![Open In Colab](b.svg)](https://colab.research.google.com/github/o/r/blob/dev/"
        "notebooks/01_x.ipynb) [01](notebooks/01_x.ipynb#sec) [bench](benchmarks/README.md) "
        "[web](https://example.org/a) [s](#results)\n\n## Quick start\n"
    )
    page = site.front_page(readme)
    assert "[01](01_x.ipynb#sec)" in page
    assert "[bench](https://github.com/o/r/blob/dev/benchmarks/README.md)" in page
    assert "[web](https://example.org/a)" in page
    assert "[s](https://github.com/o/r#results)" in page


def test_front_page_needs_the_quick_start_section() -> None:
    """A README without the section where the front page ends is refused with that name."""
    with pytest.raises(ValueError, match="Quick start"):
        site.front_page("# T\n\n## Course map\n")


@needs_chromium
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_a_browser(
    page: str, reports: dict[str, dict[str, Any]], built: tuple[Path, float], served: str
) -> None:
    """Title, figures loaded, equations typeset, every internal link resolves, no script error."""
    report = reports[page]
    notebook = ROOT / "notebooks" / page.replace(".html", ".ipynb")
    title = _first_heading(notebook) if notebook.exists() else "DeepLabv3+ from scratch"
    assert report["h1"] == title
    assert report["title"].startswith(title)
    assert report["errors"] == []
    # Nothing is fetched from elsewhere but Colab's badge, which offline shows its alt text.
    assert set(report["remote"]) <= {COLAB_BADGE}, report["remote"]

    figures = [i for i in report["images"] if i["src"] != COLAB_BADGE]
    assert all(i["complete"] and i["width"] > 0 for i in figures), figures
    badges = [i for i in report["images"] if i["src"] == COLAB_BADGE]
    assert all(i["alt"] == "Open In Colab" for i in badges)
    if notebook.exists():
        assert len(figures) == _figures(notebook)
        assert [b["link"] for b in badges] == [colab_url(f"notebooks/{notebook.name}")]
        downloads = [link for link in report["links"] if link["download"]]
        assert [d["href"] for d in downloads] == [served + notebook.name]
        exercises = [link for link in report["links"] if link["text"].startswith("Do the ex")]
        assert [e["href"] for e in exercises] == [colab_url(f"notebooks/student/{notebook.name}")]
    else:
        assert [b["link"] for b in badges] == [colab_url(f"notebooks/{n.name}") for n in NOTEBOOKS]

    assert report["math_typeset"] == report["math_sources"]
    assert report["math_errors"] == 0
    assert report["prose_dollars"] == [], "TeX left untypeset"
    if notebook.exists() and "$" in "".join(
        "".join(c["source"])
        for c in json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "markdown"
    ):
        assert report["math_typeset"] > 0

    for link in report["links"]:
        if not link["href"].startswith(served):
            continue
        target = urlsplit(link["href"])
        path = unquote(target.path).lstrip("/") or "index.html"
        file = built[0] / path
        assert file.is_file(), f"{page}: the link {link['text']!r} goes to a missing {path}"
        if target.fragment and path.endswith(".html"):
            ids = (
                reports[path]["ids"]
                if path in reports
                else re.findall(r'id="([^"]+)"', file.read_text(encoding="utf-8"))
            )
            assert unquote(target.fragment) in ids, f"{page}: no #{target.fragment} in {path}"


@needs_chromium
@pytest.mark.parametrize(
    ("query", "page"), [("gridding", "01_atrous_convolution.html"), ("poly", "07_training.html")]
)
def test_search_finds_a_notebook_by_its_text(
    query: str, page: str, browser: Chromium, served: str
) -> None:
    """The search box, with the index the site ships, lists the notebook that has the word."""
    session = browser.open(served + "index.html")
    found = browser.evaluate(session, SEARCH.replace("QUERY", json.dumps(query)))
    browser.close_tab(session)
    assert any(urlsplit(href).path == f"/{page}" for href in found), found
