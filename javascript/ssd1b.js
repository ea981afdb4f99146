/*
 * sd-webui-ssd1b: a family badge by the checkpoint dropdown, and a nudge to the presets panels when the selected
 * checkpoint changes.
 *
 * - The badge shows the family of the checkpoint selected in #setting_sd_model_checkpoint (on Forge, which gives
 *   its dropdown no id: the element of class model_selection, modules_forge/main_entry.py), read from the file's
 *   header by GET ./ssd1b/v1/inspect?checkpoint=<title> (before the host has loaded it). Text only: never HTML.
 * - When the selection changes, it clicks each panel's own (CSS-hidden) button #ssd1b-<tab>-selected; that Gradio
 *   event runs in Python, which applies the family's default preset when the user turned the option on.
 *   (On page load the panels fill their family line themselves; nothing is applied then.)
 * - Those buttons' `_js` ask `window.ssd1b.selectedCheckpoint()` for the title, so Python never has to guess it.
 *
 * One-time work runs in the host's onUiLoaded (or, outside the host, once the dropdown exists). The only global is
 * `window.ssd1b`.
 */
(function() {
    "use strict";

    const CHECKPOINT_ID = "setting_sd_model_checkpoint";
    const FORGE_CHECKPOINT_SELECTOR = ".model_selection";
    const REFRESH_IDS = ["refresh_sd_model_checkpoint", "forge_refresh_checkpoint"];
    const BADGE_ID = "ssd1b-family-badge";
    const TABS = ["txt2img", "img2img"];
    const INSPECT_URL = "./ssd1b/v1/inspect?checkpoint=";
    const SETTLE_MS = 250;
    const state = {started: false, title: null, request: 0, timer: null};

    function root() {
        return typeof gradioApp === "function" ? gradioApp() : document;
    }

    function byId(id) {
        return root().querySelector("#" + id) || document.getElementById(id);
    }

    function checkpointBox() {
        return byId(CHECKPOINT_ID) || root().querySelector(FORGE_CHECKPOINT_SELECTOR);
    }

    function checkpointInput() {
        const box = checkpointBox();
        return box ? box.querySelector("input, select") : null;
    }

    /** The title selected in the checkpoint dropdown ("" while the user is typing a filter into it). */
    function selectedCheckpoint() {
        const input = checkpointInput();
        if (!input || document.activeElement === input) return "";
        return input.value || "";
    }

    function badge() {
        let element = byId(BADGE_ID);
        if (element) return element;
        const box = checkpointBox();
        if (!box) return null;
        element = document.createElement("span");
        element.id = BADGE_ID;
        element.className = "ssd1b-badge";
        element.setAttribute("role", "status");
        const label = box.querySelector("label") || box;
        label.appendChild(element);
        return element;
    }

    function showFamily(report) {
        const element = badge();
        if (!element) return;
        const family = report && report.family ? String(report.family) : "unknown";
        const label = report && report.label ? report.label : family;
        const distilled = Boolean(report && report.distilled);
        element.textContent = String(label);
        element.dataset.family = family;
        element.dataset.distilled = distilled ? "true" : "false";
        element.title = report && report.error ? String(report.error) : "Checkpoint family, from the file's header";
    }

    function showProblem(message) {
        const element = badge();
        if (!element) return;
        element.textContent = "?";
        element.dataset.family = "unknown";
        element.dataset.distilled = "false";
        element.title = message;
    }

    function inspect(title) {
        const request = ++state.request;
        return fetch(INSPECT_URL + encodeURIComponent(title), {headers: {Accept: "application/json"}})
            .then(function(response) {
                if (!response.ok) throw new Error("HTTP " + response.status);
                return response.json();
            })
            .then(function(report) {
                if (request === state.request) showFamily(report);
                return report;
            })
            .catch(function(error) {
                if (request === state.request) showProblem("Could not inspect the checkpoint: " + error.message);
                return null;
            });
    }

    function clickPanels(action) {
        TABS.forEach(function(tab) {
            const button = byId("ssd1b-" + tab + "-" + action);
            if (button) button.click();
        });
    }

    function check(isFirst) {
        const title = selectedCheckpoint();
        if (!title || title === state.title) return;
        state.title = title;
        inspect(title);
        if (!isFirst) clickPanels("selected");
    }

    function schedule() {
        clearTimeout(state.timer);
        state.timer = setTimeout(function() {
            check(false);
        }, SETTLE_MS);
    }

    function start() {
        if (state.started || !checkpointBox()) return;
        state.started = true;
        check(true);
        const input = checkpointInput();
        if (input) input.addEventListener("blur", schedule);
        if (typeof onAfterUiUpdate === "function") {
            onAfterUiUpdate(schedule);
        } else {
            new MutationObserver(schedule).observe(checkpointBox(), {childList: true, subtree: true, characterData: true});
        }
    }

    function uiReady() {
        return checkpointBox() && byId("txt2img_prompt");
    }

    function startWhenReady() {
        if (typeof onUiLoaded === "function") {
            onUiLoaded(start);
            return;
        }
        const observer = new MutationObserver(function() {
            if (uiReady()) {
                observer.disconnect();
                start();
            }
        });
        const begin = function() {
            observer.observe(document.body, {childList: true, subtree: true});
            if (uiReady()) start();
        };
        if (document.body) begin();
        else document.addEventListener("DOMContentLoaded", begin);
    }

    /** For a panel button's `_js`: its inputs with the first one replaced by the selected checkpoint's title. */
    function withSelectedCheckpoint(args) {
        const values = Array.prototype.slice.call(args);
        const title = selectedCheckpoint() || state.title || "";
        if (values.length > 0) values[0] = title;
        return values;
    }

    /** After a conversion in the panel: the host's checkpoint refresh button, so the new file is in the dropdown. */
    function refreshCheckpointsAfterConversion(result) {
        if (typeof result === "string" && result.indexOf("Converted ") === 0) {
            const refresh = REFRESH_IDS.map(byId).find(Boolean);
            if (refresh) refresh.click();
        }
        return [];
    }

    /** While a LoRA trains (the bar's data-phase is not a finished one), click the section's ↻ every TRAIN_POLL_MS,
     * only while the page is visible. ssd1b/webui/panel/training.py: POLL_SECONDS, FINISHED_PHASES. */
    const TRAIN_POLL_MS = 2000;
    const TRAIN_FINISHED = ["done", "stopped", "failed"];

    function trainingInProgress() {
        const bar = document.querySelector("#ssd1b-train-progress .ssd1b-train-bar");
        return Boolean(bar) && TRAIN_FINISHED.indexOf(bar.getAttribute("data-phase")) < 0;
    }

    function pollTraining() {
        if (document.hidden || !trainingInProgress()) return;
        const refresh = byId("ssd1b-train-refresh");
        if (refresh) refresh.click();
    }

    window.ssd1b = {
        refreshCheckpointsAfterConversion: refreshCheckpointsAfterConversion,
        selectedCheckpoint: selectedCheckpoint,
        withSelectedCheckpoint: withSelectedCheckpoint,
        inspect: inspect,
        start: start,
        trainingInProgress: trainingInProgress,
    };

    startWhenReady();
    setInterval(pollTraining, TRAIN_POLL_MS);
})();
