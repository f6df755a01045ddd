//! The admin page end to end: headless Chromium against a real `smsgw serve` (SQLite in a temp
//! dir) whose gateways send to the test kit's HTTP sink on loopback.
//!
//! One person's session, in order: sign in (a wrong token first), create an HTTP gateway from
//! the form generated from `GET /v1/providers` (a validation problem shown beside its field, then
//! fixed), see `<script>` in its description shown as text, send a test SMS and see it arrive at
//! the sink and as `sent` in the message list and its detail, edit the gateway without seeing
//! its secret (kept when untouched, replaced when typed), see the file-defined gateway
//! read-only, use the page on a phone-sized screen, order a route's gateways and add a rule (a bad
//! pattern shown beside its field, then fixed), send a test SMS through the route, see the
//! breaker state in the gateway list, delete the gateway,
//! sign out, and be asked to sign in again when the token is revoked. Screenshots of each page
//! go to `target/admin-screenshots/`.

mod support;

use std::time::Duration;

use fantoccini::Locator;
use fantoccini::key::Key;
use support::browser::{Browser, WAIT};
use support::server::{FILE_GATEWAY, TestServer};

const GW: &str = "sms-e2e";
const HOSTILE: &str = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">";
const PHONE: &str = "+491511234567";

/// Asserts that no injected markup ran or exists.
async fn assert_not_injected(b: &Browser) {
    assert_eq!(
        b.js("return window.pwned === undefined").await,
        true,
        "injected script ran"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('main img, main script').length")
            .await,
        0
    );
}

async fn sign_in(b: &Browser, s: &TestServer) {
    b.open("/").await;
    b.el("#token").await;
    b.screenshot("01-signin").await;
    // A send token is not enough, and says so beside the field.
    b.fill("#token", &s.send_token).await;
    b.click("#sign-in").await;
    b.text_contains("#token-error", "admin scope").await;
    b.fill("#token", "wrong-token").await;
    b.click("#sign-in").await;
    b.text_contains("#token-error", "does not know this token")
        .await;
    // The keyboard alone: type the token and press Enter.
    b.fill("#token", &s.admin_token).await;
    b.press(Key::Enter).await;
    b.el("#gateways").await;
    // The focus goes to the new view's heading, and Tab leads on to its first action.
    assert_eq!(b.js("return document.activeElement.tagName").await, "H1");
    b.press(Key::Tab).await;
    assert_eq!(b.focused().await, "new-gateway");
    // The token is in this tab's session storage only: not in the URL, not in a cookie.
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains(&s.admin_token));
    assert_eq!(b.js("return document.cookie").await, "");
    assert_eq!(
        b.js("return sessionStorage.getItem('smsgw.admin.token')")
            .await,
        s.admin_token.as_str()
    );
    assert_eq!(b.js("return localStorage.length").await, 0);
}

async fn create_gateway(b: &Browser, s: &TestServer) {
    b.click("#new-gateway").await;
    b.el("#gw-provider")
        .await
        .select_by_value("http")
        .await
        .unwrap();
    // The form is generated from the provider's schema: one field per parameter.
    b.el("#opt-URL").await;
    let label = b.el("label[for=opt-URL]").await.text().await.unwrap();
    assert!(
        label.contains("URL") && label.contains("*"),
        "required marker: {label}"
    );
    assert_eq!(
        b.el("#opt-HTTP_METHOD")
            .await
            .prop("tagName")
            .await
            .unwrap()
            .as_deref(),
        Some("SELECT")
    );
    assert_eq!(
        b.el("#opt-PASSWORD")
            .await
            .attr("type")
            .await
            .unwrap()
            .as_deref(),
        Some("password")
    );
    assert_eq!(
        b.el("#opt-TIMEOUT")
            .await
            .attr("placeholder")
            .await
            .unwrap()
            .as_deref(),
        Some("3")
    );
    let hint = b.el("#opt-URL-hint").await.text().await.unwrap();
    assert!(hint.contains("URL"), "the parameter's description: {hint}");

    b.fill("#gw-id", GW).await;
    b.fill("#gw-description", HOSTILE).await;
    b.fill("#opt-URL", "not a url").await;
    b.fill("#opt-USERNAME", "admin-user").await;
    b.fill("#opt-PASSWORD", "s3cret-pass").await;
    // Free options as name/value rows.
    for (i, (k, v)) in [("to", "{phone}"), ("text", "{otp}")].iter().enumerate() {
        b.click("#free-options-add").await;
        let names = b
            .client
            .find_all(Locator::Css("#free-options .kv-name"))
            .await
            .unwrap();
        let values = b
            .client
            .find_all(Locator::Css("#free-options .kv-value"))
            .await
            .unwrap();
        names[i].send_keys(k).await.unwrap();
        values[i].send_keys(v).await.unwrap();
    }
    b.click("#save").await;
    // The server's 422 names the option; the page puts it beside the URL field.
    let err = b.text_shown("#opt-URL-error").await;
    assert!(!err.trim().is_empty(), "a problem beside URL");
    assert_eq!(
        b.el("#opt-URL")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    b.text_contains("#gw-summary", "URL").await;
    b.screenshot("03-gateway-validation").await;

    b.fill("#opt-URL", &format!("{}/send", s.sink.url())).await;
    b.click("#save").await;
    b.text_contains("#flash", &format!("Gateway {GW} saved"))
        .await;
    b.el("#delete").await;
}

async fn gateway_list_shows_text(b: &Browser) {
    b.open("/#/gateways").await;
    let row = b.text_contains("#gateways", GW).await;
    assert!(
        row.contains(HOSTILE),
        "the description is shown as text: {row}"
    );
    assert!(row.contains("file (read-only)"), "{row}");
    assert_not_injected(b).await;
    b.screenshot("02-gateways").await;
}

async fn test_send(b: &Browser, s: &TestServer, text: &str, shot: Option<&str>) -> String {
    s.sink.clear();
    b.open(&format!("/#/test/gateway/{GW}")).await;
    b.fill("#test-to", PHONE).await;
    b.fill("#test-text", text).await;
    b.click("#send-test").await;
    b.text_contains("#outcome h2", "sent").await;
    b.text_contains("#outcome .attempts", GW).await;
    if let Some(name) = shot {
        b.js("document.getElementById('outcome').scrollIntoView({block: 'center'}); return null")
            .await;
        b.screenshot(name).await;
    }
    let reqs = s.sink.wait_for_requests(1, WAIT).await;
    assert_eq!(reqs.len(), 1, "the sink received the test SMS once");
    assert_eq!(reqs[0].param("to").as_deref(), Some(PHONE));
    assert_eq!(reqs[0].param("text").as_deref(), Some(text));
    reqs[0].basic_auth.clone().unwrap_or_default()
}

async fn messages_show_it_sent(b: &Browser, text: &str) {
    b.click("#outcome-message").await;
    b.text_contains("#message-text", text).await;
    b.text_contains("h1", "sent").await;
    assert_not_injected(b).await;
    b.screenshot("06-message-detail").await;
    b.open("/#/messages").await;
    b.el("#auto-refresh:checked").await;
    let table = b.text_contains("#messages", "sent").await;
    assert!(table.contains(PHONE), "{table}");
    b.el("#status-filter")
        .await
        .select_by_value("failed")
        .await
        .unwrap();
    b.el("#no-messages").await;
    b.el("#status-filter")
        .await
        .select_by_value("sent")
        .await
        .unwrap();
    b.text_contains("#messages", PHONE).await;
    b.screenshot("05b-messages").await;
}

async fn edit_secret(b: &Browser, s: &TestServer) {
    b.open(&format!("/#/gateways/{GW}")).await;
    let pw = b.el("#opt-PASSWORD").await;
    assert_eq!(
        pw.prop("value").await.unwrap().as_deref(),
        Some(""),
        "a secret is never shown"
    );
    assert_eq!(
        pw.attr("placeholder").await.unwrap().as_deref(),
        Some("unchanged")
    );
    let source = b.client.source().await.unwrap();
    assert!(
        !source.contains("s3cret-pass"),
        "the secret is nowhere in the page"
    );
    b.js("document.getElementById('opt-PASSWORD').scrollIntoView({block: 'center'}); return null")
        .await;
    b.screenshot("04-gateway-edit").await;
    // Untouched, it is sent back as __CENSORED__ and the server keeps it.
    b.fill("#gw-description", "edited").await;
    b.clear_flash().await;
    b.click("#save").await;
    b.text_contains("#flash", "saved").await;
    assert_eq!(
        test_send(b, s, "kept", None).await,
        "admin-user:s3cret-pass"
    );
    // Typed, it replaces the stored one.
    b.open(&format!("/#/gateways/{GW}")).await;
    b.fill("#opt-PASSWORD", "n3w-pass").await;
    b.clear_flash().await;
    b.click("#save").await;
    b.text_contains("#flash", "saved").await;
    assert_eq!(
        test_send(b, s, "replaced", None).await,
        "admin-user:n3w-pass"
    );
}

async fn file_gateway_is_read_only(b: &Browser) {
    b.open(&format!("/#/gateways/{FILE_GATEWAY}")).await;
    b.el("#read-only").await;
    assert_eq!(b.js("return [...document.querySelectorAll('#gateway-form input, #gateway-form select, #gateway-form textarea')].every(e => e.disabled)").await, true);
    assert!(b.client.find(Locator::Css("#save")).await.is_err());
    assert!(b.client.find(Locator::Css("#delete")).await.is_err());
    assert_eq!(
        b.el("#opt-PASSWORD")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("")
    );
    b.screenshot("07-file-gateway").await;
}

async fn phone_screen(b: &Browser) {
    b.client.set_window_size(390, 844).await.unwrap();
    for (page, shot) in [
        ("/#/gateways", "08-phone-gateways"),
        ("/#/messages", "09-phone-messages"),
    ] {
        b.open(page).await;
        b.el("main table").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let overflow = b.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{page} scrolls sideways on a phone: {overflow}"
        );
        b.screenshot(shot).await;
    }
    b.client.set_window_size(1280, 900).await.unwrap();
}

async fn route_with_gateway_order(b: &Browser, s: &TestServer) {
    b.open("/#/routes").await;
    b.click("#new-route").await;
    b.fill("#rt-name", "otp").await;
    for g in [GW, FILE_GATEWAY] {
        b.el("#route-gateways-pick")
            .await
            .select_by_value(g)
            .await
            .unwrap();
        b.click("#route-gateways-add").await;
    }
    b.text_contains("#route-gateways-list", FILE_GATEWAY).await;
    // Reorder with the keyboard: Enter on "move up"; the focus follows the moved gateway.
    b.el(&format!(
        "#route-gateways-list li[data-gateway='{FILE_GATEWAY}'] button.up"
    ))
    .await;
    b.js(&format!("document.querySelector(\"#route-gateways-list li[data-gateway='{FILE_GATEWAY}'] button.up\").focus(); return null")).await;
    b.press(Key::Enter).await;
    assert_eq!(b.focused().await, format!("Move {FILE_GATEWAY} down"));
    let first = b
        .el("#route-gateways-list li:first-child")
        .await
        .attr("data-gateway")
        .await
        .unwrap();
    assert_eq!(first.as_deref(), Some(FILE_GATEWAY));
    b.screenshot("10-route-form").await;
    // A rule with a bad pattern: the server's problem is shown beside the rule's field.
    b.click("#rule-add").await;
    b.fill("#rule-0-match", "(").await;
    b.fill("#rule-0-gateways", GW).await;
    b.click("#save").await;
    let err = b.text_shown("#rule-0-match-error").await;
    assert!(
        !err.trim().is_empty(),
        "a problem beside the rule's pattern"
    );
    b.js("document.getElementById('rule-0-match').scrollIntoView({block: 'center'}); return null")
        .await;
    b.screenshot("10b-route-rule-problem").await;
    b.text_contains("#rt-summary", "rules[0].match").await;
    b.fill("#rule-0-match", "^\\+49").await;
    b.click("#save").await;
    b.text_contains("#routes", &format!("{FILE_GATEWAY} → {GW}"))
        .await;
    b.screenshot("11-routes").await;
    // The rule is kept, and a test SMS through the route shows which gateway took it.
    b.open("/#/routes/otp").await;
    assert_eq!(
        b.el("#rule-0-match")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("^\\+49")
    );
    s.sink.clear();
    b.open("/#/test/route/otp").await;
    b.fill("#test-to", PHONE).await;
    b.fill("#test-text", "via the route").await;
    b.click("#send-test").await;
    b.text_contains("#outcome h2", "sent").await;
    let attempts = b.text_contains("#outcome .attempts", GW).await;
    assert!(
        !attempts.contains(FILE_GATEWAY),
        "the rule chose {GW}: {attempts}"
    );
    assert_eq!(s.sink.wait_for_requests(1, WAIT).await.len(), 1);
    b.screenshot("12-route-test").await;
    // The gateway list shows each gateway's breaker and recent failures.
    b.open("/#/gateways").await;
    let row = b.text_contains("#gateways", "breaker closed").await;
    assert!(row.contains("0% of the last"), "{row}");
    b.open("/#/routes/otp").await;
    b.click("#delete").await;
    b.click("#delete-confirm").await;
    b.text_contains("#flash", "Route otp deleted").await;
}

async fn delete_gateway(b: &Browser) {
    b.open(&format!("/#/gateways/{GW}")).await;
    b.click("#delete").await;
    b.click("#delete-confirm").await;
    b.text_contains("#flash", &format!("Gateway {GW} deleted"))
        .await;
    b.el("#gateways").await;
    let list = b.el("#gateways").await.text().await.unwrap();
    assert!(!list.contains(GW), "{list}");
}

async fn sign_out_and_revoked_token(b: &Browser, s: &TestServer) {
    let stored = "return sessionStorage.getItem('smsgw.admin.token')";
    b.click("#sign-out").await;
    b.el("#signin-form").await;
    assert_eq!(
        b.js(stored).await,
        serde_json::Value::Null,
        "signing out forgets the token"
    );
    b.fill("#token", &s.admin_token).await;
    b.press(Key::Enter).await;
    b.el("#gateways").await;
    // The token is revoked while the page is open: the next call gets 401, the page forgets the
    // token and asks for one again, saying why.
    let revoke = "return fetch('/v1/tokens/e2e-admin', {method: 'DELETE', headers: \
        {Authorization: 'Bearer ' + sessionStorage.getItem('smsgw.admin.token')}}).then(r => r.status)";
    assert_eq!(b.js(revoke).await, 204);
    b.open("/#/messages").await;
    b.text_contains("main", "no longer accepts the token").await;
    b.el("#signin-form").await;
    assert_eq!(b.js(stored).await, serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_session_end_to_end() {
    let s = TestServer::start().await;
    let b = Browser::start(&s.base).await;
    sign_in(&b, &s).await;
    create_gateway(&b, &s).await;
    gateway_list_shows_text(&b).await;
    let text = "<script>window.pwned=3</script> code 123456";
    test_send(&b, &s, text, Some("05a-test-send")).await;
    messages_show_it_sent(&b, text).await;
    edit_secret(&b, &s).await;
    file_gateway_is_read_only(&b).await;
    phone_screen(&b).await;
    route_with_gateway_order(&b, &s).await;
    delete_gateway(&b).await;
    sign_out_and_revoked_token(&b, &s).await;
    b.close().await;
    s.stop().await;
}
