//! Bearer tokens: 32 random bytes, shown once, stored as SHA-256; compared in constant time.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use sha2::Digest as _;
use smsgw_queue::{Queue, Scope, TokenRecord};
use subtle::ConstantTimeEq as _;

use crate::problem::Problem;

/// A new random token (43 URL-safe characters).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token: SHA-256, lower-case hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The tokens in memory. They are read from the store again when they are a second old and a
/// request comes, so that `smsgw token revoke` (which writes the file while the server runs) takes
/// effect within a second, and when an unknown token shows up (`smsgw token create`), at most
/// once a second, so that guessing does not cost a read per request.
pub(crate) struct TokenCache {
    inner: RwLock<(Vec<TokenRecord>, Option<Instant>)>,
    /// Held while reading the store: the requests that find the cache stale wait for one read.
    reading: tokio::sync::Mutex<()>,
}

const RELOAD_EVERY: Duration = Duration::from_secs(1);

impl TokenCache {
    pub(crate) fn new() -> Self {
        TokenCache {
            inner: RwLock::new((Vec::new(), None)),
            reading: tokio::sync::Mutex::new(()),
        }
    }

    fn find(&self, hash: &str) -> Option<TokenRecord> {
        let g = self.inner.read().expect("not poisoned");
        // Compare against every token in constant time: timing tells nothing about a near miss.
        let mut found = None;
        for t in &g.0 {
            if bool::from(t.hash.as_bytes().ct_eq(hash.as_bytes())) {
                found = Some(t.clone());
            }
        }
        found
    }

    fn fresh(&self) -> bool {
        let g = self.inner.read().expect("not poisoned");
        g.1.is_some_and(|at| at.elapsed() < RELOAD_EVERY)
    }

    /// Reads the tokens from the store now (after a change through the API).
    pub(crate) async fn reload(&self, queue: &dyn Queue) {
        let _one = self.reading.lock().await;
        self.read_store(queue).await;
    }

    async fn read_store(&self, queue: &dyn Queue) {
        match queue.list_tokens().await {
            Ok(list) => *self.inner.write().expect("not poisoned") = (list, Some(Instant::now())),
            Err(e) => {
                // The last list stays in use; the next read is tried a second later, not at
                // every request.
                self.inner.write().expect("not poisoned").1 = Some(Instant::now());
                tracing::error!(error = %e, "cannot load the tokens");
            }
        }
    }

    /// Reads the store unless the cache is fresh (another request just read it).
    async fn refresh(&self, queue: &dyn Queue) {
        let _one = self.reading.lock().await;
        if !self.fresh() {
            self.read_store(queue).await;
        }
    }

    /// The token's record, if it is valid.
    pub(crate) async fn verify(&self, queue: &dyn Queue, token: &str) -> Option<TokenRecord> {
        let hash = hash_token(token);
        if !self.fresh() {
            self.refresh(queue).await;
        }
        self.find(&hash)
    }
}

/// The token of an `Authorization` header: `Bearer TOKEN`, or (for clients that can only set a
/// header's whole value, like privacyIDEA's HTTP provider) the bare token.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let token = match v.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => v,
    };
    (!token.is_empty()).then_some(token)
}

/// Checks `token` for `needed`: 401 when missing or unknown, 403 when its scope is too small.
pub(crate) async fn check(
    cache: &TokenCache,
    queue: &dyn Queue,
    token: Option<&str>,
    needed: Scope,
) -> Result<TokenRecord, Problem> {
    let Some(token) = token else {
        return Err(unauthorized("an Authorization: Bearer token is required"));
    };
    let Some(rec) = cache.verify(queue, token).await else {
        return Err(unauthorized("the token is not valid"));
    };
    if !rec.scope.allows(needed) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token '{}' has scope '{}'; this needs scope '{}'",
                rec.name,
                rec.scope.as_str(),
                needed.as_str()
            ),
        ));
    }
    Ok(rec)
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}
