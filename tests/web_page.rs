//! The web page in a real browser: `glurpc serve` processes (the binary, as a person starts
//! it) and headless Chromium from Debian's `chromium` package, driven over the DevTools
//! protocol (chromiumoxide). A person's steps: pick an export, see the forecast, check the
//! numbers against `/forecast`, switch units, step through past windows, download, delete,
//! provoke errors (a file that is not an export, no key, a wrong key, a file too large).
//! Every request the page makes must go to the server and nowhere else.
//!
//! The browser must start: a missing Chromium fails these tests (`tools/test` installs it).
//! Screenshots at desktop and phone sizes go to `target/tmp/web_page/` (printed).

mod common;
#[path = "web/harness.rs"]
mod harness;

use std::time::Instant;

use chromiumoxide::cdp::browser_protocol::browser::{
    SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::layout::Point;
use common::server::b64;
use harness::*;
use serde_json::json;

/// Keys off, the embedded default model: the whole walk of a person through the page.
#[test]
fn a_person_gets_a_forecast_in_a_real_browser() {
    let server = Serve::start(&[]);
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let origin = server.rest.clone();
    let started = Instant::now();
    runtime().block_on(async {
        let http = reqwest::Client::new();
        // the page and its deep links are served, with a policy that keeps the browser here
        for path in ["/", "/app", "/app/forecast"] {
            let r = http.get(server.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("connect-src 'self'"), "{csp}");
            assert!(r.text().await.unwrap().contains("data-testid=\"upload\""));
        }

        let browser = browser(profile.path()).await;
        browser
            .execute(
                SetDownloadBehaviorParams::builder()
                    .behavior(SetDownloadBehaviorBehavior::Allow)
                    .download_path(downloads.path().to_string_lossy())
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let desk = tab(&browser, &server.url("/"), 1280, 900, false).await;
        assert_eq!(desk.js("document.title").await, "glurpc: glucose forecast");
        let weight = desk
            .js("performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((s, e) => s + e.transferSize, 0)")
            .await;
        eprintln!("page weight on first load: {weight} bytes transferred");

        // 1. a Dexcom export (mg/dL): the next hour, the same medians as /forecast
        let dexcom = real("dexcom_us_14d.csv");
        desk.choose(&dexcom).await;
        assert_eq!(desk.settle(&["ready", "error"]).await, "ready");
        let took = desk.js("window.glurpcTiming.dropToChartMs").await;
        eprintln!("drop to chart: {took} ms");
        let raw = std::fs::read(&dexcom).unwrap();
        let expected = post(
            &http,
            server.url("/forecast"),
            json!({"csv_base64": b64(&raw)}),
            None,
        )
        .await;
        let medians = numbers(&expected["median"]);
        assert_eq!(medians.len(), 12);
        assert_eq!(
            desk.medians_shown().await,
            medians.iter().map(|&m| mgdl(m)).collect::<Vec<_>>()
        );
        assert_eq!(desk.js("document.body.dataset.index").await, "1");
        assert_eq!(desk.js("document.querySelector('[data-testid=units]').value").await, "mgdl");
        // the chart: history, median, both bands, target range, the "now" line, axis titles
        for part in ["path.history", "path.median", "polygon.band90", "polygon.band50", "rect.target", "line.now"] {
            assert_eq!(
                desk.js(&format!("document.querySelectorAll('[data-testid=chart] {part}').length")).await,
                1,
                "{part}"
            );
        }
        let chart_text = desk.text("[data-testid=chart]").await;
        assert!(chart_text.contains("Glucose (mg/dL)"), "{chart_text}");
        assert!(chart_text.contains("local time of the export"), "{chart_text}");
        assert!(chart_text.contains("Oct 2019"), "{chart_text}");
        let summary = desk.text("#summary").await;
        assert!(summary.contains(&format!("{} mg/dL", mgdl(medians[5]))), "{summary}");
        // warnings in plain words beside the chart
        let notes = desk.text("[data-testid=warnings]").await;
        assert!(notes.contains("Gaps in the readings were filled"), "{notes}");
        // values on hover
        let bbox = desk
            .page
            .find_element("[data-testid=chart]")
            .await
            .unwrap()
            .bounding_box()
            .await
            .unwrap();
        desk.page
            .move_mouse(Point {
                x: bbox.x + bbox.width * 0.93,
                y: bbox.y + bbox.height / 2.0,
            })
            .await
            .unwrap();
        assert_eq!(desk.js("document.getElementById('tip').hidden").await, false);
        let tip = desk.text("#tip").await;
        assert!(tip.contains("median") && tip.contains("90%"), "{tip}");
        desk.shot("desktop-forecast.png").await;
        // a screen reader finds every control by name, and the chart as an image with its words
        let controls = desk.named_controls().await;
        for (role, name) in [
            ("combobox", "Unit"),
            ("slider", "Window"),
            ("button", "Earlier window"),
            ("button", "Numbers (CSV)"),
            ("button", "Delete this upload from the server"),
        ] {
            assert!(
                controls.iter().any(|(r, n)| r == role && n == name),
                "no {role} named {name:?} in {controls:?}"
            );
        }
        assert!(
            controls
                .iter()
                .any(|(r, n)| r == "image" && n.contains("Glucose forecast chart") && n.contains("In 30 minutes")),
            "{controls:?}"
        );

        // 2. mmol/L: the same forecast in the other unit, and the choice is remembered
        desk.js("(() => { const s = document.querySelector('[data-testid=units]'); s.value = 'mmol'; s.dispatchEvent(new Event('change')); })()").await;
        assert_eq!(
            desk.medians_shown().await,
            medians.iter().map(|&m| mmol(m)).collect::<Vec<_>>()
        );
        assert!(desk.text("[data-testid=chart]").await.contains("Glucose (mmol/L)"));
        assert_eq!(desk.js("localStorage.getItem('glurpc.units')").await, "mmol");

        // 3. a past window: forecast against what happened, as /draw_a_plot computes it
        let handle = expected["handle"].as_str().unwrap().to_string();
        desk.mark().await;
        desk.js("(() => { const w = document.querySelector('[data-testid=window]'); w.value = '-5'; w.dispatchEvent(new Event('change')); })()").await;
        desk.settle(&["ready"]).await;
        assert_eq!(desk.js("document.body.dataset.index").await, "-5");
        let past = post(
            &http,
            server.url("/draw_a_plot?format=json"),
            json!({"handle": handle, "index": -5}),
            None,
        )
        .await;
        assert_eq!(
            desk.medians_shown().await,
            numbers(&past["median"]).iter().map(|&m| mmol(m)).collect::<Vec<_>>()
        );
        assert!(desk.text("#window-text").await.starts_with("Back-test"));
        assert!(desk.text("#numbers thead").await.contains("Measured"));
        assert_eq!(
            desk.js("document.querySelectorAll('[data-testid=chart] path.actual').length").await,
            1
        );
        // one step back with the keyboard, on the focused slider
        let slider = desk.page.find_element("[data-testid=window]").await.unwrap();
        slider.focus().await.unwrap();
        desk.mark().await;
        slider.press_key("ArrowLeft").await.unwrap();
        assert_eq!(desk.settle(&["ready", "error"]).await, "ready");
        let stepped: i64 = desk.js("Number(document.body.dataset.index)").await.as_i64().unwrap();
        assert_eq!(stepped, -6);
        let past = post(
            &http,
            server.url("/draw_a_plot?format=json"),
            json!({"handle": handle, "index": stepped}),
            None,
        )
        .await;
        assert_eq!(
            desk.medians_shown().await,
            numbers(&past["median"]).iter().map(|&m| mmol(m)).collect::<Vec<_>>()
        );
        desk.shot("desktop-backtest-mmol.png").await;

        // 4. downloads: the numbers as CSV, the chart as PNG
        desk.click("download-csv").await;
        let csv = String::from_utf8(downloaded(downloads.path(), "csv").await).unwrap();
        let header = csv.lines().next().unwrap();
        assert!(header.starts_with("kind,time,measured_mmol_l,median_mmol_l"), "{header}");
        let forecast_rows: Vec<&str> = csv.lines().filter(|l| l.starts_with("forecast,")).collect();
        assert_eq!(forecast_rows.len(), 12);
        for (row, m) in forecast_rows.iter().zip(numbers(&past["median"])) {
            let median: f64 = row.split(',').nth(3).unwrap().parse().unwrap();
            assert!((median - m / 18.0182).abs() < 0.006, "{row} vs {m}");
        }
        desk.click("download-png").await;
        let png = downloaded(downloads.path(), "png").await;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 10_000);
        desk.click("download-svg").await;
        let svg = String::from_utf8(downloaded(downloads.path(), "svg").await).unwrap();
        assert!(svg.contains("<svg") && svg.contains("mmol/L"), "the SVG is not the mmol/L chart");

        // 5. not an export: a clear message, no chart
        let junk = downloads.path().join("notes.txt");
        std::fs::write(&junk, "shopping list\neggs, milk, bread\n").unwrap();
        desk.choose(&junk).await;
        assert_eq!(desk.settle(&["ready", "error"]).await, "error");
        let msg = desk.text("[data-testid=error]").await;
        assert!(msg.starts_with("This file could not be used:"), "{msg}");
        assert_eq!(desk.js("document.getElementById('result').hidden").await, true);
        desk.shot("desktop-error.png").await;

        // 6. a phone: a gzip export, units remembered from before, nothing wider than the screen
        let phone = tab(&browser, &server.url("/app"), 390, 844, true).await;
        phone.choose(&real("medtronic_86d.csv.gz")).await;
        assert_eq!(phone.settle(&["ready", "error"]).await, "ready");
        assert_eq!(phone.js("document.querySelector('[data-testid=units]').value").await, "mmol");
        assert_eq!(
            phone.js("document.documentElement.scrollWidth <= window.innerWidth").await,
            true,
            "the page is wider than the phone"
        );
        phone.shot("phone-forecast.png").await;

        // 7. an mmol/L export with no stored choice: shown in its own unit, conversion noted
        phone.js("localStorage.removeItem('glurpc.units')").await;
        phone.choose(&real("libre_eu_1y.csv")).await;
        assert_eq!(phone.settle(&["ready", "error"]).await, "ready");
        assert_eq!(phone.js("document.querySelector('[data-testid=units]').value").await, "mmol");
        assert!(phone.text("[data-testid=warnings]").await.contains("converted to mg/dL"));

        // 8. delete: the server no longer has the upload
        phone.mark().await;
        phone.click("delete").await;
        assert_eq!(phone.settle(&["deleted", "error"]).await, "deleted");
        let gone = http
            .post(server.url("/draw_a_plot?format=json"))
            .json(&json!({"handle": handle_of(&real("libre_eu_1y.csv")), "index": 0}))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);

        desk.assert_only(&origin);
        phone.assert_only(&origin);
    });
    eprintln!("browser test: {:.1} s", started.elapsed().as_secs_f64());
}

/// Keys on, a model folder: the page asks for a key, says when it is wrong, works with the
/// right one, keeps it in the tab only, and says when a file is too large.
#[test]
fn keys_and_limits_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# test key\nright-key-123\n").unwrap();
    let model = common::data_dir().join("model/small");
    let server = Serve::start(&[
        "--enable-api-keys",
        "--api-keys-file",
        keys.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-upload-bytes",
        "600000",
    ]);
    let profile = tempfile::tempdir().unwrap();
    let origin = server.rest.clone();
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let browser = browser(profile.path()).await;
        let t = tab(&browser, &server.url("/"), 1280, 900, false).await;
        let dexcom = real("dexcom_us_14d.csv");

        // no key: the page says a key is needed and opens the key field
        t.choose(&dexcom).await;
        assert_eq!(t.settle(&["ready", "error"]).await, "error");
        let msg = t.text("[data-testid=error]").await;
        assert!(msg.contains("needs an API key"), "{msg}");
        assert_eq!(t.js("document.getElementById('settings').open").await, true);
        t.shot("desktop-key-needed.png").await;

        // a wrong key: refused, in words
        let field = t.page.find_element("[data-testid=api-key]").await.unwrap();
        field.click().await.unwrap();
        field.type_str("wrong-key").await.unwrap();
        t.mark().await;
        field.press_key("Enter").await.unwrap();
        assert_eq!(t.settle(&["ready", "error"]).await, "error");
        let msg = t.text("[data-testid=error]").await;
        assert!(msg.contains("refused this API key"), "{msg}");

        // the right key: the forecast, equal to what /forecast answers with that key
        t.js("document.querySelector('[data-testid=api-key]').value = ''")
            .await;
        field.type_str("right-key-123").await.unwrap();
        t.mark().await;
        field.press_key("Enter").await.unwrap();
        assert_eq!(t.settle(&["ready", "error"]).await, "ready");
        let raw = std::fs::read(&dexcom).unwrap();
        let expected = post(
            &http,
            server.url("/forecast"),
            json!({"csv_base64": b64(&raw)}),
            Some("right-key-123"),
        )
        .await;
        assert_eq!(
            t.medians_shown().await,
            numbers(&expected["median"])
                .iter()
                .map(|&m| mgdl(m))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            t.js("sessionStorage.getItem('glurpc.apiKey')").await,
            "right-key-123"
        );
        assert_eq!(
            t.js("JSON.stringify(localStorage).includes('right-key')")
                .await,
            false
        );

        // too large for this server: 413 in words
        t.choose(&real("libre_eu_1y.csv")).await;
        assert_eq!(t.settle(&["ready", "error"]).await, "error");
        let msg = t.text("[data-testid=error]").await;
        assert!(msg.contains("larger than the server accepts"), "{msg}");
        t.shot("desktop-too-large.png").await;
        t.assert_only(&origin);

        // a server whose queue cannot take an upload's windows: 503 in words, with the wait
        let busy = Serve::start(&[
            "--model",
            model.to_str().unwrap(),
            "--max-inference-queue-size",
            "8",
        ]);
        let b = tab(&browser, &busy.url("/"), 1280, 900, false).await;
        b.choose(&dexcom).await;
        assert_eq!(b.settle(&["ready", "error"]).await, "error");
        let msg = b.text("[data-testid=error]").await;
        assert!(
            msg.starts_with("The server is busy right now; try again in"),
            "{msg}"
        );
        b.assert_only(&busy.rest);
    });
}
