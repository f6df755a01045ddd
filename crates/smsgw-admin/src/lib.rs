//! The admin page of `smsgw serve`: plain HTML, CSS and a few ES modules, embedded in the binary
//! and served by an axum [`Router`] with a strict Content-Security-Policy.
//!
//! The page talks only to the service's `/v1` API, with the admin token the person signs in with
//! (kept in the tab's `sessionStorage`, sent as `Authorization: Bearer …`). The files need no
//! build step and load nothing from elsewhere. The server mounts the page beside its API:
//!
//! ```
//! use axum::routing::get;
//! let api: axum::Router = axum::Router::new().route("/v1/providers", get(|| async { "[]" }));
//! let app = api.merge(smsgw_admin::router());
//! # let _ = app;
//! ```
//!
//! [`router`] answers `GET /` (the page) and `GET /admin/*` (its script modules and style sheet);
//! every answer carries [`CONTENT_SECURITY_POLICY`] and the other headers of [`security_headers`].
#![deny(missing_docs)]

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The policy every answer of [`router`] carries: scripts, styles and API calls only from the
/// page's own origin, no inline script or style, no frames, no plugins, and Trusted Types
/// enforced — so an `innerHTML` assignment with text fails in the browser instead of
/// interpreting a gateway description or a message as markup.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'none'; object-src 'none'; \
     media-src 'none'; frame-src 'none'; worker-src 'none'; manifest-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file and where it is served.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $ty:expr) => {
        Asset {
            path: $path,
            content_type: $ty,
            body: include_bytes!(concat!("../assets/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page. The modules import each other by relative path (`./api.js`), so
/// they all live under `/admin/`.
const ASSETS: &[Asset] = &[
    asset!("/", "index.html", "text/html; charset=utf-8"),
    asset!("/admin/admin.css", "admin.css", "text/css; charset=utf-8"),
    asset!("/admin/icon.svg", "icon.svg", "image/svg+xml"),
    asset!("/admin/app.js", "app.js", JS),
    asset!("/admin/api.js", "api.js", JS),
    asset!("/admin/dom.js", "dom.js", JS),
    asset!("/admin/forms.js", "forms.js", JS),
    asset!("/admin/gateways.js", "gateways.js", JS),
    asset!("/admin/routes.js", "routes.js", JS),
    asset!("/admin/messages.js", "messages.js", JS),
    asset!("/admin/testsend.js", "testsend.js", JS),
];

/// The headers every answer of the page carries, [`CONTENT_SECURITY_POLICY`] first.
pub fn security_headers() -> [(HeaderName, HeaderValue); 7] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // The files change with the binary: always revalidate, never keep a stale script.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

fn serve(asset: &'static Asset) -> Response {
    (
        StatusCode::OK,
        security_headers(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        security_headers(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "not found",
    )
        .into_response()
}

/// The page's routes: `GET /` and `GET /admin/*`. Unknown files under `/admin/` answer 404 with
/// the same headers; every other path is left to the router this one is merged into. Generic
/// over the state so that it merges into a server's router before or after `with_state`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for asset in ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router.route("/admin/{*rest}", get(not_found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let res = router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_and_the_policy() {
        for asset in ASSETS {
            let (status, headers, body) = get_path(asset.path).await;
            assert_eq!(status, StatusCode::OK, "{}", asset.path);
            assert_eq!(headers[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(!body.is_empty(), "{}", asset.path);
        }
    }

    #[tokio::test]
    async fn unknown_files_answer_404_with_the_policy() {
        let (status, headers, _) = get_path("/admin/nope.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
    }

    #[test]
    fn the_policy_forbids_inline_code_frames_and_other_origins() {
        let p = CONTENT_SECURITY_POLICY;
        assert!(p.contains("default-src 'self'"));
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.contains("require-trusted-types-for 'script'"));
        assert!(!p.contains("unsafe"), "no 'unsafe-inline' or 'unsafe-eval'");
        assert!(!p.contains("http"), "no other origin");
    }

    /// The page's own files obey the policy: no inline script or style, no handler attributes,
    /// nothing from another origin, and no markup built from strings.
    #[test]
    fn the_files_use_no_inline_code_and_no_html_strings() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        for tag in html.split('<').skip(1) {
            let tag = tag.split('>').next().unwrap_or("");
            if tag.starts_with("script") {
                assert!(tag.contains("src="), "inline script: <{tag}>");
            }
            assert!(!tag.starts_with("style"), "inline style sheet");
            assert!(!tag.contains(" style="), "style attribute: <{tag}>");
            assert!(!tag.contains(" on"), "handler attribute: <{tag}>");
        }
        for asset in ASSETS
            .iter()
            .filter(|a| !a.content_type.starts_with("image/"))
        {
            let text = String::from_utf8_lossy(asset.body);
            assert!(!text.contains("http://"), "{}", asset.path);
            assert!(!text.contains("https://"), "{}", asset.path);
            if asset.content_type == JS {
                for bad in [
                    "innerHTML",
                    "outerHTML",
                    "insertAdjacentHTML",
                    "document.write",
                    "eval(",
                ] {
                    assert!(!text.contains(bad), "{} uses {bad}", asset.path);
                }
            }
        }
    }
}
