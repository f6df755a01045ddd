//! Headless Chromium driven through chromedriver (WebDriver, the fantoccini client): started per
//! test with a temporary profile, stopped with its whole process group.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How long one wait for the page may take (the machine is shared and slow at times).
pub const WAIT: Duration = Duration::from_secs(20);

const APT_HINT: &str = "install the Debian packages `chromium` and `chromium-driver` \
     (apt-get install -y chromium chromium-driver), or point SMSGW_CHROMIUM and SMSGW_CHROMEDRIVER at them";

fn find_program(var: &str, candidates: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "{var}={} does not exist: {APT_HINT}",
            p.display()
        );
        return p;
    }
    for c in candidates {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!(
        "the browser tests need headless Chromium and chromedriver, and {candidates:?} was not found: {APT_HINT}"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A browser session. Screenshots go to `target/admin-screenshots/`.
pub struct Browser {
    pub client: Client,
    _driver: DriverGuard,
    _profile: tempfile::TempDir,
    pub base: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium that opens pages under `base`.
    pub async fn start(base: &str) -> Browser {
        // Debian's /usr/bin/chromium is a shell wrapper; chromedriver needs the real binary.
        let chromium = find_program(
            "SMSGW_CHROMIUM",
            &[
                "/usr/lib/chromium/chromium",
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
            ],
        );
        let driver_bin = find_program(
            "SMSGW_CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        );
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(&driver_bin);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that Drop can stop chromedriver and every browser process.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {APT_HINT}", driver_bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync", "--lang=en-US",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,900",
                ],
            },
        });
        let caps = caps.as_object().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut browser_driver = Some(driver);
        let client = loop {
            let conn = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(conn)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let d = browser_driver.as_mut().unwrap();
                    if let Ok(Some(status)) = d.try_wait() {
                        panic!(
                            "chromedriver exited ({status}) before a session started: {APT_HINT}"
                        );
                    }
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no browser session within 30 s through chromedriver: {e}"),
            }
        };
        Browser {
            client,
            _driver: DriverGuard(browser_driver.take().unwrap()),
            _profile: profile,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Opens `path` (e.g. `/#/gateways`) of the server under test.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Waits for an element.
    pub async fn el(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} within {WAIT:?}: {e}"))
    }

    /// Waits until `css` exists and its text contains `needle`; returns the text.
    pub async fn text_contains(&self, css: &str, needle: &str) -> String {
        self.wait_text(css, &format!("contain {needle:?}"), |t| t.contains(needle))
            .await
    }

    /// Waits until `css` exists and shows some text; returns it.
    pub async fn text_shown(&self, css: &str) -> String {
        self.wait_text(css, "show a text", |t| !t.trim().is_empty())
            .await
    }

    async fn wait_text(&self, css: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.ok(),
                Err(_) => None,
            };
            if let Some(t) = text {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} did not come to {what} within {WAIT:?}; last text: {last:?}");
    }

    /// Clears a field and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.el(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.el(css).await.click().await.unwrap();
    }

    /// Runs a script in the page and returns its value.
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Presses a key (e.g. `Key::Tab`) in whatever element has the focus.
    pub async fn press(&self, key: fantoccini::key::Key) {
        let e = self.client.active_element().await.unwrap();
        e.send_keys(&key.to_string()).await.unwrap();
    }

    /// The id (or else the aria-label) of the element with the focus.
    pub async fn focused(&self) -> String {
        let v = self.js("const e = document.activeElement; return e.id || e.getAttribute('aria-label') || e.tagName").await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Empties the page's notice area, so that the next notice is surely a new one.
    pub async fn clear_flash(&self) {
        self.js("document.getElementById('flash').replaceChildren(); return null")
            .await;
    }

    /// Saves a PNG of the window as `target/admin-screenshots/{name}.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (closes the browser) and stops chromedriver.
    pub async fn close(self) {
        let Browser {
            client, _driver, ..
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(_driver);
    }
}

/// `target/admin-screenshots`, found from the test binary's place (`target/debug/deps/…`).
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
    target.join("admin-screenshots")
}

struct DriverGuard(Child);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser it started (by our child's id only).
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.0.id()))
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
