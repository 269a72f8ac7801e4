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


# Markup in a study name (its file name and `sweep:` key) and in a config value (issue 24 §1).
HOSTILE_STUDY = 'w<img src=x onerror="document.body.id=1337">'
HOSTILE_VALUE = '<script>document.body.id="1338"</script>![p](http://127.0.0.1:9/pixel.png)<a href=x>l</a>'
# Every element and attribute of the page, and whether the markup shows as text.
PAGE_FACTS = """(() => {
  const all = Array.from(document.querySelectorAll('*'));
  return {bodyId: document.body.id,
          tags: [...new Set(all.map(e => e.tagName.toLowerCase()))],
          attrs: all.flatMap(e => Array.from(e.attributes).map(a => [e.tagName.toLowerCase(), a.name, a.value])),
          text: document.body.innerText};
})()"""


def test_markup_in_a_study_name_and_a_config_value_is_text_in_the_page(tmp_path):
    import json

    from helpers import run_cli

    results = tmp_path / "results"
    demo_store(results, sweep=HOSTILE_STUDY, seeds=2, digits=False)
    for path in (results / "runs").glob("*/result.json"):
        record = json.loads(path.read_text())
        record["config"]["model"] = {"name_or_path": HOSTILE_VALUE}
        path.write_text(json.dumps(record))
    code, out, err = run_cli(tmp_path, ["report", "--sweep", HOSTILE_STUDY, "--results", str(results)], timeout=300)
    assert code == 0, err
    page_file = results / HOSTILE_STUDY / "report.html"
    with Browser() as browser:
        page = browser.open(page_file.as_uri(), probe=PAGE_FACTS)
    facts = page["probe"]
    assert facts["bodyId"] == ""  # no handler ran
    assert "script" not in facts["tags"] and "a" not in facts["tags"]
    for tag, name, value in facts["attrs"]:
        assert not name.startswith("on"), (tag, name, value)
        assert "document.body" not in value and "127.0.0.1" not in value, (tag, name, value[:80])
        if tag == "img":
            assert name == "alt" or value.startswith("data:image/png;base64,"), (tag, name, value)
    # the only images are the figures; the markup is shown, as typed
    assert len(page["images"]) == len(list((results / HOSTILE_STUDY / "figures").glob("*.png")))
    assert HOSTILE_STUDY in facts["text"] and '<script>document.body.id="1338"</script>' in facts["text"]
    assert page["title"] == f"mixsweep report: {HOSTILE_STUDY}" and page["errors"] == []


# The MLflow UI (issue 35): a study exported to a real `mlflow server` shows in the experiment's runs table.
UI_TEXT = """(async () => {{
  const want = {names};
  for (let i = 0; i < 120; i++) {{
    const text = document.body.innerText;
    if (want.every(n => text.includes(n)) && /\\d+ matching runs/.test(text)) break;
    await new Promise(r => setTimeout(r, 500));
  }}
  return document.body.innerText;
}})()"""


@pytest.mark.slow
def test_the_mlflow_ui_lists_the_exported_study_runs(tmp_path):
    import json
    import re

    pytest.importorskip("mlflow", reason="mlflow is the optional extra `tracking` (make setup installs it)")
    from helpers import run_cli
    from mlflow_server import MlflowServer

    results = tmp_path / "results"
    demo_store(results, sweep="demo", seeds=1, digits=False)
    records = [json.loads(p.read_text()) for p in (results / "runs").glob("*/result.json")]
    parents = sorted({f"{r['task']} {r['cell']}" for r in records})  # each cell's parent run, by name
    with MlflowServer(tmp_path / "mlflow") as server:
        code, out, err = run_cli(tmp_path, ["export", "mlflow", "--sweep", "demo", "--results", str(results),
                                            "--tracking-uri", server.url], timeout=300)
        assert code == 0, err
        (exp,) = [e["experiment_id"] for e in server.experiments() if e["name"] == "demo"]
        with Browser(timeout=120) as browser:
            page = browser.open(f"{server.url}/#/experiments/{exp}/runs", probe=UI_TEXT.format(names=json.dumps(parents)))
    text = page["probe"]
    missing = [name for name in parents if name not in text]
    assert not missing, f"the runs table lacks {missing}"
    assert re.search(r"(\d+) matching runs", text).group(1) == str(len(parents) + len(records))
