"""report.html in a real headless browser (Debian's ``chromium``): the page loads, every figure
decodes, and the console stays free of errors. Skipped, with the reason, where no Chromium is
installed (``apt-get install chromium``; .ci/run installs it)."""

from __future__ import annotations

import pytest

from browser import Browser, chromium_path
from mixsweep.analysis.load import load_results
from mixsweep.analysis.report import build_report
from mixsweep.analysis.synthetic import demo_store

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no chromium on PATH: `apt-get install chromium` to run the browser test")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    demo_store(root, sweep="demo", seeds=3)
    return build_report(load_results(root, "demo"), root / "demo", "demo report")


def test_report_loads_with_every_figure_decoded_and_no_console_error(report):
    with Browser() as browser:
        page = browser.open(report.html.as_uri())
    assert page["title"] == "demo report"
    assert len(page["images"]) == len(report.figures) == 5
    for complete, width, height in page["images"]:
        assert complete and width > 0 and height > 0
    assert page["errors"] == []


def test_the_browser_check_catches_a_broken_figure_and_a_console_error(report, tmp_path):
    # the checks can fail: a corrupted image decodes to nothing, a throwing script is reported
    broken = tmp_path / "broken.html"
    page_html = report.html.read_text().replace("base64,iVBOR", "base64,AAAA", 1)
    broken.write_text(page_html.replace("</body>", "<script>undefinedFunction()</script></body>"))
    with Browser() as browser:
        page = browser.open(broken.as_uri())
    assert sum(1 for _, width, _ in page["images"] if width == 0) == 1
    assert any(e["method"] == "Runtime.exceptionThrown" for e in page["errors"])
