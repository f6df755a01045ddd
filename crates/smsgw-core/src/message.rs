//! What goes in (a [`Message`]) and what comes out of a successful send (a [`Receipt`]).

use serde::Serialize;

/// One SMS to one recipient: the phone number as the caller knows it and the text.
///
/// The text is what the spec calls the `{otp}` tag: for an OTP token it is the one-time password,
/// for a notification the whole message.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The recipient's phone number before `REGEXP` rewriting.
    pub phone: String,
    /// The message text (the `{otp}` tag).
    pub text: String,
}

impl Message {
    /// A message for `phone` with `text`.
    ///
    /// ```
    /// let m = smsgw_core::Message::new("+491511234567", "Your code: 123456");
    /// assert_eq!(m.phone, "+491511234567");
    /// ```
    pub fn new(phone: impl Into<String>, text: impl Into<String>) -> Self {
        Message {
            phone: phone.into(),
            text: text.into(),
        }
    }
}

impl std::fmt::Debug for Message {
    // The text is often a one-time password: keep it out of Debug output and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("phone", &self.phone)
            .field("text_chars", &self.text.chars().count())
            .finish()
    }
}

/// Proof that a gateway accepted a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The gateway identifier from the configuration.
    pub gateway: String,
    /// The provider name (`http`, `smpp`, …).
    pub provider: String,
    /// The ids the provider gave the message, one per part where it splits (may be empty).
    pub message_ids: Vec<String>,
    /// How many SMS parts were sent (1 unless the provider splits long texts).
    pub parts: u32,
}

impl Receipt {
    /// A receipt with no provider ids and one part; providers fill in the rest.
    pub fn new(gateway: impl Into<String>, provider: impl Into<String>) -> Self {
        Receipt {
            gateway: gateway.into(),
            provider: provider.into(),
            message_ids: Vec::new(),
            parts: 1,
        }
    }

    /// Adds a provider message id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.message_ids.push(id.into());
        self
    }

    /// Sets the number of parts.
    pub fn with_parts(mut self, parts: u32) -> Self {
        self.parts = parts;
        self
    }
}

/// A delivery receipt reported back by a gateway after the send (e.g. an SMPP `deliver_sm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// The gateway identifier.
    pub gateway: String,
    /// The provider's message id the report is about.
    pub message_id: String,
    /// The final state as the gateway names it (`DELIVRD`, `UNDELIV`, `EXPIRED`, …).
    pub state: String,
    /// The gateway's error code, if it gave one (`000` when none).
    pub error: Option<String>,
    /// When the gateway says the message reached its final state (as the gateway wrote it).
    pub done_date: Option<String>,
    /// The recipient, where the gateway reports it.
    pub recipient: Option<String>,
}
