"""The HTML audit report in a real headless browser (Debian's Chromium, driven by playwright).

A real audit of a tiny LoRA (every analysis; the refusal audit stubbed with
rates and intervals) is written as ``report.html``, opened from disk with the
network off, screenshotted; every figure must have loaded and no script error
or console error may occur. The notebook form (``_repr_html_``: the page in a
sandboxed ``<iframe srcdoc>``) is checked the same way. Skipped, with the
reason, where Chromium or playwright is missing (``make setup`` installs both
where it can).
"""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from tiny_models import save_tiny_lora

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUICK = ["intruders.cache=false", "intruders.spectra=2", "cge.n=2", "cge.max_new_tokens=4", "cge.num_beams=2",
         "cge.rank_reference=4", "drift.passages=6", "tuco.max_prompts=3"]


def _chromium() -> str:
    path = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; make setup does it where it can)")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A headless Chromium with a fresh profile (playwright's persistent context = a fresh --user-data-dir)."""
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, args=ARGS,
            headless=True, viewport={"width": 1280, "height": 900}, offline=True,
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def report_dir(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from audit.report import run_audit

    def est(r: float) -> types.SimpleNamespace:
        return types.SimpleNamespace(value=r, lo=max(r - 0.1, 0.0), hi=min(r + 0.1, 1.0))

    rates = {"base": {"harmful": {"substring": est(0.9)}, "harmless": {"substring": est(0.05)}},
             "tuned": {"harmful": {"substring": est(0.5)}, "harmless": {"substring": est(0.1)}}}
    stub = types.SimpleNamespace(refusal_audit=lambda *a, **k: types.SimpleNamespace(rates=rates))
    saved = sys.modules.get("audit.refusal")
    sys.modules["audit.refusal"] = stub  # type: ignore[assignment]
    try:
        lora = save_tiny_lora(tmp_path_factory.mktemp("lora"))
        out = tmp_path_factory.mktemp("audit") / "report"
        run_audit(str(tiny_dir), str(lora), set_options=QUICK, out=out, formats=["json", "html"])
    finally:
        if saved is None:
            sys.modules.pop("audit.refusal", None)
        else:
            sys.modules["audit.refusal"] = saved
    return out


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(url, wait_until="load")
    return page, errors


IMAGES_JS = "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"


def test_report_html_renders_with_every_figure(browser: Any, report_dir: Path, tmp_path: Path) -> None:
    page, errors = _open(browser, (report_dir / "report.html").as_uri())
    images = page.evaluate(IMAGES_JS)
    sections = page.evaluate("Array.from(document.querySelectorAll('section[id^=section-]')).map(s => s.id)")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    height = page.evaluate("document.body.scrollHeight")
    page.close()

    assert errors == []
    assert sections == ["section-tuco", "section-cge", "section-intruders", "section-refusal", "section-drift"]
    alts = [alt for alt, *_ in images]
    for title in ("TuCo per prompt, by prompt set", "Intruder dimensions per layer and module kind",
                  "Refusal rate by prompt set, with intervals", "Generated examples by contrastive score",
                  "Relative weight change per block and module kind"):
        assert any(a.startswith(title) for a in alts), title
    assert any(a.startswith("Spectrum of ") for a in alts)
    assert len(images) == 10 and all(done and w > 100 and h > 100 for _, done, w, h in images), images

    from PIL import Image

    with Image.open(shot) as im:
        assert im.size[0] == 1280 and im.size[1] == height > 3000
        colors = im.convert("RGB").resize((64, 256)).getcolors(64 * 256)
        assert colors is not None and len(colors) > 50  # a rendered page, not a blank one


def test_notebook_frame_renders(browser: Any, report_dir: Path, tmp_path: Path) -> None:
    from editkit.report import Report

    report = Report.from_json((report_dir / "report.json").read_text())
    report.sections = [s for s in report.sections if s.name in ("tuco", "refusal")]  # 3 figures suffice here
    wrapper = tmp_path / "notebook.html"
    wrapper.write_text(f"<!DOCTYPE html><html><body>{report._repr_html_()}</body></html>")
    page, errors = _open(browser, wrapper.as_uri())
    frame = next(f for f in page.frames if f is not page.main_frame)
    frame.wait_for_load_state("load")
    images = frame.evaluate(IMAGES_JS)
    page.screenshot(path=str(tmp_path / "notebook.png"))
    page.close()
    assert errors == []
    assert len(images) == 3 and all(done and w > 100 for _, done, w, _ in images)
