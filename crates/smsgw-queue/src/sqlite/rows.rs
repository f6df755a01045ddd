//! Turning rows into records.

use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::QueueError;
use crate::model::{MessageRecord, Status, Target};

/// The columns every message query selects, in the order [`message`] reads them.
pub(crate) const MESSAGE_COLUMNS: &str = "id, to_number, text, target_kind, target, status, \
     attempts, message_ids, metadata, callback_url, idem_key, possible_duplicate, lease, \
     created_at, updated_at";

fn bad(what: &str, v: &str) -> QueueError {
    QueueError::Store(format!("the database holds an invalid {what}: '{v}'"))
}

/// Decodes a row selected with [`MESSAGE_COLUMNS`]; also returns the lease counter.
pub(crate) fn message(row: &SqliteRow) -> Result<(MessageRecord, u64), QueueError> {
    let kind: String = row.try_get("target_kind")?;
    let name: String = row.try_get("target")?;
    let target = Target::from_parts(&kind, &name).ok_or_else(|| bad("target kind", &kind))?;
    let status: String = row.try_get("status")?;
    let status = Status::parse(&status).ok_or_else(|| bad("status", &status))?;
    let json = |col: &str| -> Result<Option<serde_json::Value>, QueueError> {
        let v: Option<String> = row.try_get(col)?;
        v.map(|s| serde_json::from_str(&s).map_err(|_| bad(col, &s)))
            .transpose()
    };
    let attempts = match json("attempts")? {
        Some(v) => serde_json::from_value(v).map_err(|e| bad("attempts", &e.to_string()))?,
        None => Vec::new(),
    };
    let message_ids = match json("message_ids")? {
        Some(v) => serde_json::from_value(v).map_err(|e| bad("message_ids", &e.to_string()))?,
        None => Vec::new(),
    };
    let lease: i64 = row.try_get("lease")?;
    Ok((
        MessageRecord {
            id: row.try_get("id")?,
            to: row.try_get("to_number")?,
            text: row.try_get("text")?,
            target,
            status,
            attempts,
            message_ids,
            metadata: json("metadata")?,
            callback_url: row.try_get("callback_url")?,
            idempotency_key: row.try_get("idem_key")?,
            possible_duplicate: row.try_get::<i64, _>("possible_duplicate")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
        lease as u64,
    ))
}
