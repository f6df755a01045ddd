//! Names on the broker: stream, bucket, subject and consumer names, and how gateway ids, route
//! names and other free text become subject tokens and keys. One place, so that every node and
//! `smsgw queue status` agree.

use smsgw_queue::Target;

/// The work-queue stream of messages to send (subjects [`MSG_SUBJECTS`]).
pub const MSG_STREAM: &str = "SMSGW_MESSAGES";
/// Every subject of [`MSG_STREAM`]: `smsgw.msg.<g|r>.<target token>`.
pub const MSG_SUBJECTS: &str = "smsgw.msg.>";
/// The work-queue stream of status callbacks to deliver.
pub const CB_STREAM: &str = "SMSGW_CALLBACKS";
/// The one subject of [`CB_STREAM`].
pub const CB_SUBJECT: &str = "smsgw.cb";
/// The durable consumer every node shares to deliver callbacks.
pub const CB_CONSUMER: &str = "callbacks";
/// The stream of dead letters (limits retention: they stay for inspection).
pub const DEAD_STREAM: &str = "SMSGW_DEAD";
/// Every subject of [`DEAD_STREAM`]: `smsgw.dead.<g|r>.<target token>`.
pub const DEAD_SUBJECTS: &str = "smsgw.dead.>";

/// Key-value bucket: message id → the message's record (status, attempts …).
pub const BUCKET_MESSAGES: &str = "smsgw_messages";
/// Key-value bucket: SHA-256 of an `Idempotency-Key` → message id.
pub const BUCKET_IDEMPOTENCY: &str = "smsgw_idempotency";
/// Key-value bucket: SHA-256 of (gateway, provider message id) → message id, for receipts.
pub const BUCKET_PROVIDER_IDS: &str = "smsgw_provider_ids";
/// Key-value bucket: gateways and routes created through the API.
pub const BUCKET_DEFINITIONS: &str = "smsgw_definitions";
/// Key-value bucket: API tokens (their hashes).
pub const BUCKET_TOKENS: &str = "smsgw_tokens";
/// Key-value bucket: shared token buckets of per-gateway `rate` limits.
pub const BUCKET_RATE: &str = "smsgw_rate";
/// Key-value bucket: the server secret that signs callbacks, and the readiness probe.
pub const BUCKET_META: &str = "smsgw_meta";

/// A subject token (and key part) for free text: kept as is when it is plain
/// (`[A-Za-z0-9-][A-Za-z0-9_-]*`), else `_` and its UTF-8 bytes in hex. Reversible and
/// unambiguous, because a plain token never starts with `_`.
pub fn token(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        name.to_owned()
    } else {
        format!("_{}", hex::encode(name.as_bytes()))
    }
}

/// Reverses [`token`].
pub fn untoken(token: &str) -> Option<String> {
    match token.strip_prefix('_') {
        Some(h) => String::from_utf8(hex::decode(h).ok()?).ok(),
        None if !token.is_empty() => Some(token.to_owned()),
        None => None,
    }
}

fn kind_letter(target: &Target) -> &'static str {
    match target {
        Target::Gateway(_) => "g",
        Target::Route(_) => "r",
    }
}

/// The subject a message for `target` is published on: one subject per target, so that each
/// target has its own consumer and a dead gateway holds up only its own messages.
pub fn msg_subject(target: &Target) -> String {
    format!("smsgw.msg.{}.{}", kind_letter(target), token(target.name()))
}

/// The dead-letter subject of `target`.
pub fn dead_subject(target: &Target) -> String {
    format!(
        "smsgw.dead.{}.{}",
        kind_letter(target),
        token(target.name())
    )
}

/// The durable consumer that all workers share for `target`.
pub fn consumer_name(target: &Target) -> String {
    format!("w-{}-{}", kind_letter(target), token(target.name()))
}

/// The target of a [`msg_subject`] (or [`dead_subject`]).
pub fn target_of_subject(subject: &str) -> Option<Target> {
    let mut parts = subject.split('.');
    let (_, _, kind, tok) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let name = untoken(tok)?;
    match kind {
        "g" => Some(Target::Gateway(name)),
        "r" => Some(Target::Route(name)),
        _ => None,
    }
}

/// The key for secret or unbounded text (idempotency keys, provider ids): its SHA-256 in hex,
/// so that the broker never stores the client's key itself and every key is a valid KV key.
pub fn hashed_key(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_collide() {
        for name in ["sms1", "a-b_c", "_x", "with.dot", "späť", "a b", "*", ">"] {
            let t = token(name);
            assert!(!t.contains(['.', '*', '>', ' ']), "{t}");
            assert_eq!(untoken(&t).as_deref(), Some(name));
        }
        assert_ne!(token("_61"), token("a"));
        let t = Target::Gateway("with.dot".into());
        assert_eq!(target_of_subject(&msg_subject(&t)), Some(t.clone()));
        assert_eq!(target_of_subject(&dead_subject(&t)), Some(t));
        assert_eq!(target_of_subject("smsgw.msg.x.a"), None);
    }

    #[test]
    fn hashed_keys_separate_their_parts() {
        assert_ne!(hashed_key(&["ab", "c"]), hashed_key(&["a", "bc"]));
        assert_eq!(hashed_key(&["k"]).len(), 64);
    }
}
