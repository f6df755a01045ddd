//! The records a [`Queue`](crate::Queue) stores: messages and their attempts, gateway and route
//! definitions, tokens. Times are milliseconds since the Unix epoch (UTC).

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

/// The current time in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// A new message id: a UUID v7, so ids sort by creation time (used for paging).
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Where a message is to be sent: one gateway, or a route (an ordered set of gateways with
/// failover, defined by `smsgw-routing`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A gateway identifier.
    Gateway(String),
    /// A route name.
    Route(String),
}

impl Target {
    /// Every kind, as [`kind`](Self::kind) spells it.
    pub const KINDS: [&'static str; 2] = ["gateway", "route"];

    /// `gateway` or `route`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Gateway(_) => "gateway",
            Target::Route(_) => "route",
        }
    }

    /// The gateway id or route name.
    pub fn name(&self) -> &str {
        match self {
            Target::Gateway(n) | Target::Route(n) => n,
        }
    }

    /// Builds a target from its kind (`gateway` or `route`) and name.
    pub fn from_parts(kind: &str, name: &str) -> Option<Target> {
        match kind {
            "gateway" => Some(Target::Gateway(name.to_owned())),
            "route" => Some(Target::Route(name.to_owned())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} '{}'", self.kind(), self.name())
    }
}

/// A message's status. `queued` and `sending` are pending; the others are final (a `sent`
/// message may still become `delivered` or `undelivered` when a delivery receipt arrives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepted and durable, waiting for a worker (or for its next retry).
    Queued,
    /// A worker holds it under a lease and is sending it.
    Sending,
    /// A gateway accepted it.
    Sent,
    /// The gateway reported delivery to the handset.
    Delivered,
    /// The gateway reported that it could not be delivered.
    Undelivered,
    /// Not sent, with a classified reason in the last attempt.
    Failed,
    /// The outcome is unknown: it may have been sent. Never retried automatically.
    Unknown,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Sending,
        Status::Sent,
        Status::Delivered,
        Status::Undelivered,
        Status::Failed,
        Status::Unknown,
    ];

    /// The name used in JSON, SQL and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Undelivered => "undelivered",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
        }
    }

    /// Parses [`Status::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True for every status but `queued` and `sending`.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Sending)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One try to send a message through one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The gateway tried.
    pub gateway: String,
    /// `sent`, or the error kind: `not_sent`, `refused`, `config`, `unknown`.
    pub kind: String,
    /// The reason when not sent (never a secret: it comes from `SendError`'s display).
    pub error: Option<String>,
    /// How long the try took, in milliseconds.
    pub ms: u64,
    /// When it ended.
    pub at: Millis,
}

/// A message as a client submits it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// The recipient's phone number.
    pub to: String,
    /// The text.
    pub text: String,
    /// Where to send it.
    pub target: Target,
    /// The client's metadata, echoed back (a JSON object).
    pub metadata: Option<serde_json::Value>,
    /// Where to POST status callbacks.
    pub callback_url: Option<String>,
    /// The client's `Idempotency-Key`: a second message with the same key is not created.
    pub idempotency_key: Option<String>,
}

impl std::fmt::Debug for NewMessage {
    // Texts are often one-time passwords: never in Debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMessage")
            .field("to", &self.to)
            .field("text_chars", &self.text.chars().count())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A message as stored, with everything that happened to it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The id (a UUID v7).
    pub id: String,
    /// The recipient.
    pub to: String,
    /// The text, until retention erases it.
    pub text: Option<String>,
    /// Where it is sent.
    pub target: Target,
    /// The current status.
    pub status: Status,
    /// Every try, in order.
    pub attempts: Vec<Attempt>,
    /// The ids the gateway gave it (one per part where it splits).
    pub message_ids: Vec<String>,
    /// The client's metadata.
    pub metadata: Option<serde_json::Value>,
    /// Where status callbacks go.
    pub callback_url: Option<String>,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// True when the message was in flight in a worker that died (a crash, `kill -9`): it was
    /// sent again, so it may have reached the recipient twice.
    pub possible_duplicate: bool,
    /// When accepted.
    pub created_at: Millis,
    /// When last changed.
    pub updated_at: Millis,
}

impl std::fmt::Debug for MessageRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRecord")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("target", &self.target)
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .field("possible_duplicate", &self.possible_duplicate)
            .finish_non_exhaustive()
    }
}

/// What [`Queue::enqueue`](crate::Queue::enqueue) did with one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    /// The stored message (the earlier one when `created` is false).
    pub record: MessageRecord,
    /// False when the idempotency key was already used: nothing new was queued.
    pub created: bool,
}

/// A message a worker holds under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The message (status `sending`).
    pub record: MessageRecord,
    /// Identifies this lease: outcomes recorded under an older lease are refused.
    pub lease: u64,
}

/// What a worker reports after trying a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A gateway accepted it.
    Sent {
        /// The gateway's ids.
        message_ids: Vec<String>,
    },
    /// Final failure, or `unknown` (`status` is [`Status::Failed`] or [`Status::Unknown`]).
    Final {
        /// `failed` or `unknown`.
        status: Status,
    },
    /// Not sent and safe to retry: queue it again, not before `not_before`.
    Retry {
        /// The earliest time of the next try.
        not_before: Millis,
    },
}

/// One outcome for [`Queue::complete_many`](crate::Queue::complete_many): what happened to a
/// claimed message.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The message.
    pub id: String,
    /// The lease it was claimed under ([`Claimed::lease`]).
    pub lease: u64,
    /// The tries to append, in order.
    pub attempts: Vec<Attempt>,
    /// What to do with it.
    pub outcome: Outcome,
}

/// What [`Queue::complete_many`](crate::Queue::complete_many) recorded for one message: enough
/// for a worker to tell waiters and the callback sender, without reading the whole message back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The message.
    pub id: String,
    /// Its status now (`queued` again for a retry).
    pub status: Status,
    /// True when a status callback was put in the outbox.
    pub callback_queued: bool,
}

/// A delivery receipt to record against a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The gateway that reported it.
    pub gateway: String,
    /// The gateway's message id.
    pub provider_id: String,
    /// True for delivered, false for undelivered.
    pub delivered: bool,
}

/// A query for [`Queue::list`](crate::Queue::list): newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only messages with this status.
    pub status: Option<Status>,
    /// Only messages created at or after this time.
    pub since: Option<Millis>,
    /// Only messages older than this id (the `next` cursor of the previous page).
    pub before: Option<String>,
    /// At most this many (the implementation caps it at [`MAX_PAGE`](crate::MAX_PAGE)).
    pub limit: usize,
}

/// One page of [`Queue::list`](crate::Queue::list).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The messages, newest first.
    pub messages: Vec<MessageRecord>,
    /// The cursor for the next page, if there may be more.
    pub next: Option<String>,
}

/// A status callback waiting to be delivered (an outbox row).
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackJob {
    /// The outbox id.
    pub id: i64,
    /// The message it is about.
    pub message_id: String,
    /// Where to POST.
    pub url: String,
    /// The status the callback reports (the body is the message's JSON with this status).
    pub status: Status,
    /// Tries so far.
    pub tries: u32,
    /// When it was queued.
    pub created_at: Millis,
}

impl std::fmt::Debug for CallbackJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackJob")
            .field("id", &self.id)
            .field("message_id", &self.message_id)
            .field("tries", &self.tries)
            .finish_non_exhaustive()
    }
}

/// Gateways or routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefKind {
    /// `[gateways.ID]`
    Gateway,
    /// `[routes.NAME]`
    Route,
}

impl DefKind {
    /// `gateway` or `route`.
    pub fn as_str(self) -> &'static str {
        match self {
            DefKind::Gateway => "gateway",
            DefKind::Route => "route",
        }
    }
}

/// A gateway or route defined through the API: the body has the shape of the TOML table
/// (`{"provider": "http", "options": {…}, "headers": {…}}` for a gateway). Secrets are stored as
/// given (they are needed to send): protect the database file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDef {
    /// Gateway or route.
    pub kind: DefKind,
    /// The identifier.
    pub id: String,
    /// The table, as JSON.
    pub body: serde_json::Value,
    /// When last written.
    pub updated_at: Millis,
}

impl std::fmt::Debug for StoredDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredDef")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send messages and read them.
    Send,
    /// Everything `send` may, and manage gateways, routes and tokens.
    Admin,
}

impl Scope {
    /// `send` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Admin => "admin",
        }
    }

    /// Parses `send` or `admin`.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "send" => Some(Scope::Send),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// True when a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

/// A stored token: its name, scope and the SHA-256 of the token (hex), never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The unique name.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// SHA-256 of the token, lower-case hex.
    pub hash: String,
    /// When created.
    pub created_at: Millis,
}

/// Counts for metrics and readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages per status.
    pub by_status: Vec<(Status, u64)>,
    /// The creation time of the oldest `queued` message.
    pub oldest_queued: Option<Millis>,
    /// Callbacks waiting in the outbox.
    pub callbacks_pending: u64,
}

/// What [`Queue::prune`](crate::Queue::prune) erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Texts erased from final messages older than the text retention.
    pub texts: u64,
    /// Final messages deleted entirely (older than the row retention).
    pub rows: u64,
}
