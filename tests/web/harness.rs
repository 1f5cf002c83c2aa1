//! The browser harness of `tests/web_page.rs`: `glurpc serve` processes on free ports,
//! headless Chromium (Debian's `chromium`, over the DevTools protocol), tabs that record
//! every request they make, and the page's hooks (`data-testid`) read back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::accessibility::GetFullAxTreeParams;
use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::network::{EnableParams, EventRequestWillBeSent};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;
use serde_json::Value;

use crate::common::process::{Process, serve_command};

/// The glurpc binary under test (`GLURPC_TEST_BIN` picks another, e.g. a release build, to
/// time the page as people get it).
pub fn binary() -> PathBuf {
    std::env::var_os("GLURPC_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_glurpc")))
}

/// Where the screenshots go.
pub fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `glurpc serve` process on free ports, killed when dropped.
pub struct Serve {
    _process: Process,
    pub rest: String,
    _dir: tempfile::TempDir,
}

impl Serve {
    pub fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = serve_command(&binary());
        cmd.arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(extra)
            .env_remove("GLURPC_MODEL");
        let process = Process::start(cmd);
        Serve {
            rest: process.url(""),
            _process: process,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.rest)
    }
}

/// Headless Chromium with a fresh profile; its event loop runs on the runtime.
pub async fn browser(profile: &Path) -> Browser {
    let exe = std::env::var_os("GLURPC_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        exe.exists(),
        "Chromium not found at {} (install Debian's `chromium`: tools/test does it)",
        exe.display()
    );
    let config = BrowserConfig::builder()
        .chrome_executable(&exe)
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(profile)
        .viewport(None)
        .window_size(1280, 900)
        // no calls home: background networking, component updates and QUIC off
        .args([
            "disable-gpu",
            "disable-component-update",
            "disable-quic",
            "no-default-browser-check",
        ])
        .launch_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config)
        .await
        .unwrap_or_else(|e| panic!("headless Chromium did not start: {e}"));
    tokio::spawn(async move { while handler.next().await.is_some() {} });
    browser
}

/// A tab at a given size, recording the URL of every request it makes.
pub struct Tab {
    pub page: Page,
    requests: Arc<Mutex<Vec<String>>>,
}

pub async fn tab(browser: &Browser, url: &str, width: i64, height: i64, mobile: bool) -> Tab {
    let page = browser.new_page("about:blank").await.unwrap();
    page.execute(EnableParams::default()).await.unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let mut events = page
        .event_listener::<EventRequestWillBeSent>()
        .await
        .unwrap();
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            seen.lock().unwrap().push(e.request.url.clone());
        }
    });
    let scale = if mobile { 3.0 } else { 1.0 };
    page.execute(SetDeviceMetricsOverrideParams::new(
        width, height, scale, mobile,
    ))
    .await
    .unwrap();
    page.goto(url).await.unwrap();
    Tab { page, requests }
}

impl Tab {
    pub async fn js(&self, expr: &str) -> Value {
        self.page
            .evaluate(expr)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .into_value::<Value>()
            .unwrap_or(Value::Null)
    }

    /// Marks the page's state as unknown, so that [`Tab::settle`] waits for the state that
    /// the next action leads to (the page never writes this value itself).
    pub async fn mark(&self) {
        self.js("document.body.dataset.state = 'test-waiting'")
            .await;
    }

    /// Chooses `file` in the page's file input, as a person picking it does.
    pub async fn choose(&self, file: &Path) {
        self.mark().await;
        let input = self
            .page
            .find_element("[data-testid=upload]")
            .await
            .unwrap();
        let params = SetFileInputFilesParams::builder()
            .files(vec![file.to_string_lossy().into_owned()])
            .backend_node_id(input.backend_node_id)
            .build()
            .unwrap();
        self.page.execute(params).await.unwrap();
    }

    /// Waits until the page's state (`body[data-state]`) is one of `want`; returns it.
    pub async fn settle(&self, want: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let s = self.js("document.body.dataset.state").await;
            let s = s.as_str().unwrap_or("").to_string();
            if want.contains(&s.as_str()) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "page stuck in state {s:?}; error: {}",
                self.text("[data-testid=error]").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn text(&self, selector: &str) -> String {
        self.js(&format!(
            "(document.querySelector({selector:?}) || {{textContent: ''}}).textContent"
        ))
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    /// The medians the page shows in its numbers table.
    pub async fn medians_shown(&self) -> Vec<String> {
        let v = self
            .js("[...document.querySelectorAll('#numbers tbody td[data-col=median]')].map(t => t.textContent)")
            .await;
        serde_json::from_value(v).unwrap()
    }

    pub async fn click(&self, testid: &str) {
        self.page
            .find_element(format!("[data-testid={testid}]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn shot(&self, name: &str) {
        let path = shots().join(name);
        self.page
            .save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
            .await
            .unwrap();
        eprintln!("screenshot: {}", path.display());
    }

    /// What a screen reader gets: the controls and the chart with their roles and names,
    /// from Chromium's accessibility tree. Fails on any control without a name.
    pub async fn named_controls(&self) -> Vec<(String, String)> {
        let tree = self
            .page
            .execute(GetFullAxTreeParams::default())
            .await
            .unwrap();
        let text = |v: &Option<chromiumoxide::cdp::browser_protocol::accessibility::AxValue>| {
            v.as_ref()
                .and_then(|v| v.value.as_ref())
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let mut out = Vec::new();
        for node in &tree.result.nodes {
            let role = text(&node.role);
            if node.ignored
                || !["button", "textbox", "combobox", "slider", "image", "alert"]
                    .contains(&role.as_str())
            {
                continue;
            }
            let name = text(&node.name);
            assert!(
                !name.trim().is_empty() || role == "alert",
                "a {role} without an accessible name"
            );
            out.push((role, name));
        }
        out
    }

    /// Every request went to `origin` (or stayed inside the page: `blob:`, `data:`).
    pub fn assert_only(&self, origin: &str) {
        let seen = self.requests.lock().unwrap().clone();
        assert!(!seen.is_empty(), "no request recorded");
        let elsewhere: Vec<&String> = seen
            .iter()
            .filter(|u| {
                !(u.starts_with(&format!("{origin}/"))
                    || u.starts_with("blob:")
                    || u.starts_with("data:"))
            })
            .collect();
        assert!(
            elsewhere.is_empty(),
            "requests away from the server: {elsewhere:?}"
        );
    }
}

pub fn real(name: &str) -> PathBuf {
    crate::common::data_dir().join("real").join(name)
}

/// mg/dL as the page writes it in mmol/L.
pub fn mmol(mgdl: f64) -> String {
    format!("{:.1}", mgdl / 18.0182)
}

pub fn mgdl(v: f64) -> String {
    format!("{}", v.round() as i64)
}

pub fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

pub async fn post(http: &reqwest::Client, url: String, body: Value, key: Option<&str>) -> Value {
    let mut req = http.post(url).json(&body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.unwrap()
}

/// Waits for a download named `*.{ext}` to land in `dir`.
pub async fn downloaded(dir: &Path, ext: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = std::fs::read_dir(dir)
            .unwrap()
            .map_while(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
        {
            return std::fs::read(p).unwrap();
        }
        assert!(Instant::now() < deadline, "no .{ext} download");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The handle of an export, from `glurpc inspect` (no server involved, nothing stored).
pub fn handle_of(file: &Path) -> String {
    let out = Command::new(binary())
        .args(["inspect", "--json"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["handle"].as_str().unwrap().to_string()
}
