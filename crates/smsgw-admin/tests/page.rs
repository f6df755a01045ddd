//! The page alone in headless Chromium: it loads under its own Content-Security-Policy, the
//! policy is enforced (no inline script, no markup from strings), and the sign-in form is usable.

#[path = "support/browser.rs"]
#[allow(dead_code)]
mod browser;

use browser::Browser;

async fn serve_page() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, smsgw_admin::router::<()>())
            .await
            .unwrap()
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_is_enforced_in_the_browser() {
    let base = serve_page().await;
    let b = Browser::start(&base).await;
    b.open("/").await;
    // The modules ran (the sign-in form is built by script), so 'self' scripts are allowed.
    b.el("#signin-form #token").await;
    assert_eq!(
        b.js("return document.activeElement.id").await,
        "token",
        "the token field has the focus"
    );
    let label = b.el("label[for=token]").await.text().await.unwrap();
    assert!(label.starts_with("Admin token"), "{label}");

    // Trusted Types: markup from a string is refused.
    let r = b.js("try { document.body.innerHTML = '<b id=x>x</b>'; return 'assigned'; } catch (e) { return e.name; }").await;
    assert_eq!(
        r, "TypeError",
        "innerHTML with a string must throw under require-trusted-types-for"
    );
    // An inline script does not run.
    b.js("const s = document.createElement('script'); try { s.text = 'window.pwned = 1'; } catch (e) {} document.head.append(s); return null").await;
    assert_eq!(b.js("return window.pwned === undefined").await, true);
    // An empty token is a problem shown beside the field.
    b.click("#sign-in").await;
    let err = b.text_contains("#token-error", "Enter a token").await;
    assert!(!err.is_empty());
    assert_eq!(
        b.js("return document.getElementById('token').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    // Nothing of the token ever goes into the URL.
    b.fill("#token", "not-a-token").await;
    b.click("#sign-in").await;
    b.text_contains("#token-error", "404").await;
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("not-a-token"), "{url}");
    assert_eq!(b.js("return document.cookie").await, "");
    b.screenshot("signin").await;
    b.close().await;
}
