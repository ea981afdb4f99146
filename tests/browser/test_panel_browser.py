"""The presets panel in a real browser: clicks reach the host-shaped fields, user text stays text, the badge
follows the checkpoint dropdown and the JavaScript hands the selection to Python."""

from __future__ import annotations

import re

import pytest

from ssd1b import presets
from tests.browser import app

pytestmark = pytest.mark.browser

XSS_NAME = "<img src=x onerror=alert(1)>"


def open_page(page, served) -> None:
    page.goto(served.url + "/")
    page.wait_for_selector("#txt2img_width input[type=number]")
    page.add_style_tag(path=str(app.STYLE))


def number(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").input_value()


def text(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first.input_value()


def pick(page, elem_id: str, option: str) -> None:
    pick_in(page, f"#{elem_id}", option)


def pick_in(page, selector: str, option: str) -> None:
    page.click(f"{selector} input")
    page.locator(f"{selector} li", has_text=re.compile(rf"^\s*(✓\s*)?{re.escape(option)}\s*$")).click()


CHECKPOINT_BOX = {"1.10.1": "#setting_sd_model_checkpoint", "forge": ".model_selection"}


def open_panel(page, tab: str = "txt2img") -> None:
    page.click(f"#ssd1b-{tab}-accordion .label-wrap")
    page.wait_for_selector(f"#ssd1b-{tab}-apply", state="visible")


def test_resolution_buttons_and_apply_set_the_stand_in_fields(webui, page):
    from playwright.sync_api import expect

    with app.serve(webui, selected="sd_xl_base_1.0.safetensors") as served:
        open_page(page, served)
        open_panel(page)
        page.click("#ssd1b-txt2img-res-1216x832")
        expect(page.locator("#txt2img_width input[type=number]")).to_have_value("1216")
        expect(page.locator("#txt2img_height input[type=number]")).to_have_value("832")
        assert number(page, "img2img_width") == "512"

        page.fill("#txt2img_neg_prompt textarea", "my own words")
        name = presets.default_preset_for("ssd-1b").name
        pick(page, "ssd1b-txt2img-preset", name)
        page.click("#ssd1b-txt2img-apply")
        expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("25")
        assert number(page, "txt2img_cfg_scale") == "9"
        assert (number(page, "txt2img_width"), number(page, "txt2img_height")) == ("1024", "1024")
        assert text(page, "txt2img_sampling") == "UniPC"
        assert re.fullmatch(r"my own words,\s*ugly, blurry, poor quality", text(page, "txt2img_neg_prompt"))
        assert text(page, "ssd1b-txt2img-status").startswith(f"Applied {name}")
        assert number(page, "img2img_steps") == "20"
        assert not page.watch.errors


def test_a_user_preset_named_with_markup_shows_as_text_and_runs_nothing(webui, page):
    from playwright.sync_api import expect

    with app.serve(webui, selected="sd_xl_base_1.0.safetensors") as served:
        open_page(page, served)
        open_panel(page)
        page.click("#ssd1b-txt2img-user-presets .label-wrap")
        page.fill("#ssd1b-txt2img-name textarea, #ssd1b-txt2img-name input", XSS_NAME)
        page.click("#ssd1b-txt2img-save")
        expect(page.locator("#ssd1b-txt2img-status textarea")).to_have_value(f"Saved {XSS_NAME!r}.")
        expect(page.locator("#ssd1b-txt2img-preset input")).to_have_value(XSS_NAME)
        page.click("#ssd1b-txt2img-preset input")
        option = page.locator("#ssd1b-txt2img-preset li", has_text=XSS_NAME)
        expect(option).to_have_count(1)
        assert option.inner_text().strip().endswith(XSS_NAME)
        page.wait_for_timeout(300)  # an injected <img onerror> would have fired by now
        assert page.locator("img[src='x']").count() == 0
        assert page.watch.dialogs == []
        assert not page.watch.errors


@pytest.mark.parametrize("host_version", list(CHECKPOINT_BOX))
def test_the_badge_follows_the_dropdown_and_selecting_ssd_1b_applies_its_preset(webui, page, host_version):
    from playwright.sync_api import expect

    options = {"ssd1b_apply_preset_on_select": True}
    with app.serve(webui, selected="sd_xl_base_1.0.safetensors", options=options) as served:
        open_page(page, served)
        badge = page.locator("#ssd1b-family-badge")
        expect(badge).to_have_text("SDXL")
        expect(badge).to_have_attribute("data-distilled", "false")
        expect(page.locator("#ssd1b-txt2img-family textarea")).to_have_value(re.compile(r"^Selected: SDXL "))

        pick_in(page, CHECKPOINT_BOX[host_version], "SSD-1B.safetensors")
        expect(badge).to_have_text("SSD-1B")
        expect(badge).to_have_attribute("data-distilled", "true")
        expect(page.locator("#txt2img_steps input[type=number]")).to_have_value("25")
        expect(page.locator("#img2img_steps input[type=number]")).to_have_value("25")
        name = presets.default_preset_for("ssd-1b").name
        assert text(page, "ssd1b-txt2img-preset") == name
        assert text(page, "ssd1b-txt2img-status").startswith(f"SSD-1B selected. Applied {name}")

        pick_in(page, CHECKPOINT_BOX[host_version], "segmind-vega.safetensors")
        expect(badge).to_have_text("Segmind Vega")
        assert page.evaluate("typeof window.ssd1b.selectedCheckpoint") == "function"
        assert page.evaluate("Object.keys(window).filter(k => /^ssd1b/i.test(k))") == ["ssd1b"]
        assert page.watch.dialogs == [] and not page.watch.errors


def test_every_js_of_the_panel_sends_exactly_its_events_inputs(webui, page):
    """Gradio calls an event's js with the inputs' values followed by the outputs' and sends what it returns: a
    longer list makes gradio 4 warn "Too many arguments provided for the endpoint" at every click."""
    with app.serve(webui, selected="SSD-1B.safetensors") as served:
        open_page(page, served)
        page.wait_for_function("() => Boolean(window.ssd1b && window.ssd1b.withSelectedCheckpoint)")
        ours = [dep for dep in served.demo.config["dependencies"] if "ssd1b" in str(dep.get("js") or "")]
        with_backend = [dep for dep in ours if dep.get("backend_fn")]
        assert len(with_backend) >= 2  # the refresh and "use selected checkpoint" events of each tab
        for dep in with_backend:
            values = [f"value-{index}" for index in range(len(dep["inputs"]) + len(dep["outputs"]))]
            sent = page.evaluate("([js, values]) => new Function('return ' + js)()(...values)", [dep["js"], values])
            assert len(sent) == len(dep["inputs"]), dep["js"]
            assert sent[0].startswith("SSD-1B.safetensors") and sent[1:] == values[1 : len(dep["inputs"])]


def test_the_training_bar_is_refreshed_only_while_a_run_is_in_progress(webui, page):
    """javascript/ssd1b.js clicks the section's ↻ every 2 s while the bar's phase is not a finished one, and never
    otherwise (no request from an idle page). The bar is drawn here by hand, in a child of the component."""
    with app.serve(webui, selected="sd_xl_base_1.0.safetensors") as served:
        open_page(page, served)
        page.wait_for_function("() => Boolean(window.ssd1b && window.ssd1b.trainingInProgress)")
        page.evaluate(
            """() => {
                window.ssd1bTestClicks = 0;
                const refresh = document.querySelector("#ssd1b-train-refresh");
                refresh.addEventListener("click", () => window.ssd1bTestClicks++);
                window.ssd1bTestBar = document.createElement("div");
                document.querySelector("#ssd1b-train-progress").appendChild(window.ssd1bTestBar);
            }"""
        )
        page.wait_for_timeout(2500)
        assert page.evaluate("window.ssd1bTestClicks") == 0  # idle: "No training has run since the WebUI started"
        draw = """(phase) => {
            window.ssd1bTestBar.innerHTML = `<div class="ssd1b-train-bar" data-phase="${phase}"></div>`;
        }"""
        page.evaluate(draw, "training")
        page.wait_for_function("() => window.ssd1bTestClicks >= 1", timeout=6000)
        page.evaluate(draw, "done")
        page.wait_for_timeout(500)  # a click already on its way
        clicks = page.evaluate("window.ssd1bTestClicks")
        page.wait_for_timeout(2500)
        assert page.evaluate("window.ssd1bTestClicks") == clicks
