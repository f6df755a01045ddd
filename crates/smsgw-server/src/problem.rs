//! Errors as `application/problem+json` (RFC 9457): a status, a title, a detail naming what is
//! wrong, and for validation every problem at once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One problem with a field of the request (or an option of a definition).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field or option, e.g. `to` or `options.URL`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An error answer.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The HTTP status.
    #[serde(serialize_with = "status_code")]
    pub status: StatusCode,
    /// A short summary, the same for every instance of this kind of problem.
    pub title: &'static str,
    /// What is wrong in this request.
    pub detail: String,
    /// Every problem with a field, where there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

fn status_code<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

impl Problem {
    /// A problem with `status`, `title` and `detail`.
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 400: the body is not what the endpoint reads (not JSON, wrong shape).
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }

    /// 422 with every field problem.
    pub fn invalid(errors: Vec<FieldProblem>) -> Problem {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "invalid request",
            detail,
            errors,
        }
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    /// 503 for a failing store; the store's words go to the log, not to the client.
    pub fn store(e: smsgw_queue::QueueError) -> Problem {
        tracing::error!(error = %e, "queue store failed");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable",
            "the message store failed; nothing was accepted by this request, retry later",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (self.status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Parses a JSON body, turning serde's error into a 400 that says where the body is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages name the position and the expected type, never a value.
        Problem::bad_request(format!(
            "the body is not valid JSON of the expected shape: {e}"
        ))
    })
}

/// A request body read in full, with the read's failures as problems: 413 over the limit, 408
/// when the client is too slow, 400 otherwise.
pub struct Body(pub bytes::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Problem> {
        match bytes::Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(rej) => {
                let status = rej.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    return Err(Problem::new(
                        status,
                        "body too large",
                        "the request body is over the limit (1 MiB; 16 MiB for batches)",
                    ));
                }
                let mut src: Option<&dyn std::error::Error> = Some(&rej);
                while let Some(e) = src {
                    if e.is::<tower_http::timeout::TimeoutError>() {
                        return Err(Problem::new(
                            StatusCode::REQUEST_TIMEOUT,
                            "request timeout",
                            "the request body did not arrive in time",
                        ));
                    }
                    src = e.source();
                }
                Err(Problem::bad_request("the request body could not be read"))
            }
        }
    }
}
