//! One SMTP session of the sink: reading bounded lines, the command state machine, DATA
//! decoding.

use super::*;

pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in the set: aborting this task (the sink was dropped) drops the set,
    // which aborts them all and closes their sockets.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let n = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                let shared = shared.clone();
                tasks.spawn(async move {
                    if let Err(e) = serve(stream, n, &shared).await {
                        tracing::debug!(%peer, connection = n, "smtp sink: connection ended: {e}");
                    }
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One line read from the client.
pub(super) enum Line {
    /// The bytes up to and including the line feed (or up to EOF for a last unterminated line).
    Data(Vec<u8>),
    /// The line was longer than allowed; it was consumed and discarded.
    TooLong,
    /// The client closed the connection.
    Eof,
}

/// Reads one line of at most `max` bytes from a buffered reader; pipelined lines stay buffered.
pub(super) async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut out = Vec::new();
    let mut too_long = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() && !too_long {
                Line::Eof
            } else if too_long {
                Line::TooLong
            } else {
                Line::Data(out)
            });
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let n = chunk.len();
        if !too_long {
            if out.len() + n > max {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(chunk);
            }
        }
        r.consume(n);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Data(out)
            });
        }
    }
}

pub(super) fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[derive(Default)]
pub(super) struct Transaction {
    mail_from: Option<String>,
    mail_options: Vec<String>,
    rcpt_tos: Vec<String>,
}

pub(super) struct Session<'a> {
    shared: &'a Shared,
    connection: usize,
    io: BufReader<Box<dyn Io>>,
    tls: bool,
    ehlo: Option<String>,
    auth: Option<SmtpAuth>,
    tx: Transaction,
    errors: usize,
}

/// What the session does after a command.
pub(super) enum Next {
    Continue,
    Quit,
    /// Hand the connection over to TLS (after `220` to `STARTTLS`).
    StartTls,
}

pub(super) async fn serve(
    stream: TcpStream,
    connection: usize,
    shared: &Shared,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (io, tls): (Box<dyn Io>, bool) = if shared.options.implicit_tls {
        (Box::new(shared.acceptor.accept(stream).await?), true)
    } else {
        (Box::new(stream), false)
    };
    let mut s = Session {
        shared,
        connection,
        io: BufReader::new(io),
        tls,
        ehlo: None,
        auth: None,
        tx: Transaction::default(),
        errors: 0,
    };
    let greeting = format!(
        "220 {} ESMTP smsgw-testkit sink ready",
        shared.options.hostname
    );
    s.reply(&greeting).await?;
    loop {
        let line = match read_line(&mut s.io, MAX_COMMAND_LINE).await? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                s.error("500 5.5.2 Line too long").await?;
                if s.errors >= MAX_ERRORS {
                    return Ok(());
                }
                continue;
            }
            Line::Data(l) => l,
        };
        let line = String::from_utf8_lossy(trim_eol(&line)).into_owned();
        match s.command(&line).await? {
            Next::Continue => {}
            Next::Quit => return Ok(()),
            Next::StartTls => {
                // Dropping the reader's buffer discards anything pipelined after STARTTLS in
                // plaintext (RFC 3207 §4.2: it must not be trusted).
                let plain =
                    std::mem::replace(&mut s.io, BufReader::new(Box::new(tokio::io::empty())))
                        .into_inner();
                let tls_stream = shared.acceptor.accept(plain).await?;
                s.io = BufReader::new(Box::new(tls_stream));
                s.tls = true;
                s.ehlo = None;
                s.auth = None;
                s.tx = Transaction::default();
            }
        }
        if s.errors >= MAX_ERRORS {
            s.reply("421 4.7.0 Too many errors, closing connection")
                .await?;
            return Ok(());
        }
    }
}

/// Splits `FROM:<addr> PARAMS` (or `TO:`) into the address and its parameters.
pub(super) fn parse_path(arg: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let (addr, params) = if let Some(r) = rest.strip_prefix('<') {
        let end = r.find('>')?;
        (r[..end].to_owned(), &r[end + 1..])
    } else {
        // Lenient: a bare address up to the first space.
        let end = rest.find(' ').unwrap_or(rest.len());
        (rest[..end].to_owned(), &rest[end..])
    };
    let params = params.split_whitespace().map(str::to_owned).collect();
    Some((addr, params))
}

impl Session<'_> {
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        let w = self.io.get_mut();
        w.write_all(text.as_bytes()).await?;
        w.write_all(b"\r\n").await?;
        w.flush().await
    }

    async fn error(&mut self, text: &str) -> std::io::Result<()> {
        self.errors += 1;
        self.reply(text).await
    }

    async fn read_auth_line(&mut self) -> std::io::Result<Option<String>> {
        match read_line(&mut self.io, MAX_COMMAND_LINE).await? {
            Line::Data(l) => Ok(Some(String::from_utf8_lossy(trim_eol(&l)).into_owned())),
            Line::TooLong => Ok(Some(String::new())),
            Line::Eof => Ok(None),
        }
    }

    async fn command(&mut self, line: &str) -> std::io::Result<Next> {
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line, ""),
        };
        let opts = &self.shared.options;
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                if arg.is_empty() {
                    self.error("501 5.5.4 EHLO needs a domain").await?;
                    return Ok(Next::Continue);
                }
                self.ehlo = Some(arg.to_owned());
                self.tx = Transaction::default();
                let mut lines = vec![
                    format!("{} greets {arg}", opts.hostname),
                    "PIPELINING".to_owned(),
                    "8BITMIME".to_owned(),
                    "SMTPUTF8".to_owned(),
                    format!("SIZE {}", opts.max_message_size),
                ];
                if opts.starttls && !self.tls {
                    lines.push("STARTTLS".into());
                }
                if !opts.credentials.is_empty() && !opts.mechanisms.is_empty() {
                    lines.push(format!("AUTH {}", opts.mechanisms.join(" ")));
                }
                lines.push("HELP".into());
                let last = lines.len() - 1;
                let text: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
                    .collect();
                self.reply(&text.join("\r\n")).await?;
            }
            "HELO" => {
                if arg.is_empty() {
                    self.error("501 5.5.4 HELO needs a domain").await?;
                    return Ok(Next::Continue);
                }
                self.ehlo = Some(arg.to_owned());
                self.tx = Transaction::default();
                let text = format!("250 {}", opts.hostname);
                self.reply(&text).await?;
            }
            "STARTTLS" => {
                if !opts.starttls {
                    self.error("502 5.5.1 STARTTLS not available").await?;
                } else if self.tls {
                    self.error("503 5.5.1 TLS already active").await?;
                } else if !arg.is_empty() {
                    self.error("501 5.5.4 STARTTLS takes no arguments").await?;
                } else {
                    self.reply("220 2.0.0 Ready to start TLS").await?;
                    return Ok(Next::StartTls);
                }
            }
            "AUTH" => self.auth_command(arg).await?,
            "MAIL" => {
                if self.ehlo.is_none() {
                    self.error("503 5.5.1 Say EHLO first").await?;
                } else if self.tx.mail_from.is_some() {
                    self.error("503 5.5.1 Nested MAIL command").await?;
                } else if opts.require_auth && self.auth.is_none() {
                    self.error("530 5.7.0 Authentication required").await?;
                } else {
                    match parse_path(arg, "FROM:") {
                        Some((from, params)) => {
                            self.tx.mail_from = Some(from);
                            self.tx.mail_options = params;
                            self.reply("250 2.1.0 Ok").await?;
                        }
                        None => self.error("501 5.5.4 Syntax: MAIL FROM:<address>").await?,
                    }
                }
            }
            "RCPT" => {
                if self.tx.mail_from.is_none() {
                    self.error("503 5.5.1 Need MAIL before RCPT").await?;
                } else if self.tx.rcpt_tos.len() >= MAX_RECIPIENTS {
                    self.error("452 4.5.3 Too many recipients").await?;
                } else {
                    match parse_path(arg, "TO:") {
                        Some((to, _)) if !to.is_empty() => {
                            self.tx.rcpt_tos.push(to);
                            self.reply("250 2.1.5 Ok").await?;
                        }
                        _ => self.error("501 5.5.4 Syntax: RCPT TO:<address>").await?,
                    }
                }
            }
            "DATA" => {
                if !arg.is_empty() {
                    self.error("501 5.5.4 DATA takes no arguments").await?;
                } else if self.tx.mail_from.is_none() {
                    self.error("503 5.5.1 Need MAIL command").await?;
                } else if self.tx.rcpt_tos.is_empty() {
                    self.error("554 5.5.1 No valid recipients").await?;
                } else {
                    self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
                    return self.data().await;
                }
            }
            "RSET" => {
                self.tx = Transaction::default();
                self.reply("250 2.0.0 Ok").await?;
            }
            "NOOP" => self.reply("250 2.0.0 Ok").await?,
            "VRFY" => self.reply("252 2.1.5 Cannot VRFY user").await?,
            "HELP" => self.reply("214 2.0.0 smsgw-testkit SMTP sink").await?,
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                return Ok(Next::Quit);
            }
            _ => self.error("500 5.5.2 Command not recognized").await?,
        }
        Ok(Next::Continue)
    }

    async fn auth_command(&mut self, arg: &str) -> std::io::Result<()> {
        if self.shared.options.credentials.is_empty() {
            return self.error("502 5.5.1 AUTH not available").await;
        }
        if self.ehlo.is_none() {
            return self.error("503 5.5.1 Say EHLO first").await;
        }
        if self.auth.is_some() {
            return self.error("503 5.5.1 Already authenticated").await;
        }
        if self.tx.mail_from.is_some() {
            return self
                .error("503 5.5.1 AUTH not allowed during a mail transaction")
                .await;
        }
        let mut parts = arg.split_whitespace();
        let mechanism = parts.next().unwrap_or("").to_ascii_uppercase();
        if !mechanism.is_empty() && !self.shared.options.mechanisms.contains(&mechanism) {
            return self.error("504 5.5.4 Mechanism not supported").await;
        }
        let initial = parts.next().map(str::to_owned);
        let decode = |s: &str| -> Option<String> {
            if s == "=" {
                return Some(String::new());
            }
            B64.decode(s.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        };
        let (username, password) = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => r,
                    None => {
                        self.reply("334 ").await?;
                        match self.read_auth_line().await? {
                            Some(l) => l,
                            None => return Ok(()),
                        }
                    }
                };
                if response == "*" {
                    return self.error("501 5.7.0 Authentication cancelled").await;
                }
                let Some(decoded) = decode(&response) else {
                    return self.error("501 5.5.2 Cannot decode the response").await;
                };
                let fields: Vec<&str> = decoded.split('\0').collect();
                if fields.len() != 3 {
                    return self.error("501 5.5.2 Malformed PLAIN response").await;
                }
                (fields[1].to_owned(), fields[2].to_owned())
            }
            "LOGIN" => {
                let user = match initial {
                    Some(u) => u,
                    None => {
                        self.reply("334 VXNlcm5hbWU6").await?;
                        match self.read_auth_line().await? {
                            Some(l) => l,
                            None => return Ok(()),
                        }
                    }
                };
                if user == "*" {
                    return self.error("501 5.7.0 Authentication cancelled").await;
                }
                self.reply("334 UGFzc3dvcmQ6").await?;
                let pass = match self.read_auth_line().await? {
                    Some(l) => l,
                    None => return Ok(()),
                };
                if pass == "*" {
                    return self.error("501 5.7.0 Authentication cancelled").await;
                }
                match (decode(&user), decode(&pass)) {
                    (Some(u), Some(p)) => (u, p),
                    _ => return self.error("501 5.5.2 Cannot decode the response").await,
                }
            }
            "" => return self.error("501 5.5.4 AUTH needs a mechanism").await,
            _ => return self.error("504 5.5.4 Mechanism not supported").await,
        };
        let ok = self
            .shared
            .options
            .credentials
            .iter()
            .any(|(u, p)| *u == username && *p == password);
        if ok {
            self.auth = Some(SmtpAuth {
                mechanism,
                username,
            });
            self.reply("235 2.7.0 Authentication successful").await
        } else {
            self.error("535 5.7.8 Authentication credentials invalid")
                .await
        }
    }

    /// Reads the message after `354`, then consults the fault plan and answers.
    async fn data(&mut self) -> std::io::Result<Next> {
        let max = self.shared.options.max_message_size;
        let mut data = Vec::new();
        let mut too_big = false;
        loop {
            let line = match read_line(&mut self.io, MAX_DATA_LINE).await? {
                Line::Eof => return Ok(Next::Quit),
                Line::TooLong => {
                    too_big = true;
                    continue;
                }
                Line::Data(l) => l,
            };
            if trim_eol(&line) == b"." {
                break;
            }
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + unstuffed.len() > max {
                too_big = true;
            }
            if !too_big {
                data.extend_from_slice(unstuffed);
            }
        }
        let tx = std::mem::take(&mut self.tx);
        if too_big {
            self.error("552 5.3.4 Message too big").await?;
            return Ok(Next::Continue);
        }
        let mut msg = decode_message(&data);
        msg.connection = self.connection;
        msg.ehlo = self.ehlo.clone().unwrap_or_default();
        msg.mail_from = tx.mail_from.unwrap_or_default();
        msg.mail_options = tx.mail_options;
        msg.rcpt_tos = tx.rcpt_tos;
        msg.auth = self.auth.clone();
        msg.tls = self.tls;

        let fault = self.shared.faults.next_request();
        let (reply, next) = match &fault {
            None | Some(Fault::Delay(_)) => (Some((250, "2.0.0 Ok: queued".to_owned())), None),
            Some(Fault::Reply { code, text }) => {
                let text = text.replace(['\r', '\n'], " ");
                (Some((*code as u16, text)), None)
            }
            Some(Fault::NeverAnswer) => (None, None),
            Some(Fault::Close) => (None, Some(Next::Quit)),
            // Faults of other protocols (added later) do not apply to SMTP: behave.
            #[allow(unreachable_patterns)]
            Some(_) => (Some((250, "2.0.0 Ok: queued".to_owned())), None),
        };
        msg.reply_code = reply.as_ref().map(|(c, _)| *c);
        self.record(msg, reply.as_ref().is_none_or(|(c, _)| *c < 400));
        match (fault, reply) {
            (Some(Fault::NeverAnswer), _) => {
                // Keep the connection open and silent until the client or the sink gives up.
                std::future::pending::<()>().await;
                Ok(Next::Quit)
            }
            (_, None) => Ok(next.unwrap_or(Next::Quit)),
            (fault, Some((code, text))) => {
                if let Some(Fault::Delay(d)) = fault {
                    tokio::time::sleep(d).await;
                }
                self.reply(&format!("{code} {text}")).await?;
                Ok(Next::Continue)
            }
        }
    }

    fn record(&self, msg: SmtpMessage, accepted: bool) {
        if accepted {
            self.shared.recorder.record(Received {
                protocol: "smtp".into(),
                recipient: msg.rcpt_tos.first().cloned().unwrap_or_default(),
                text: msg.text(),
                detail: serde_json::to_value(&msg).unwrap_or_default(),
            });
        }
        let mut list = self.shared.messages.lock().unwrap();
        if self.shared.recorder.keeps(list.len()) {
            list.push(msg);
        }
    }
}

/// Decodes the content of a message (everything but the envelope and session fields).
pub(super) fn decode_message(data: &[u8]) -> SmtpMessage {
    let raw = String::from_utf8_lossy(data).into_owned();
    let parsed = mail_parser::MessageParser::default().parse(data);
    let headers = raw_headers(&raw);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (content_type, charset) = match parsed.as_ref().and_then(|m| m.content_type()) {
        Some(ct) => (
            format!(
                "{}/{}",
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or("plain").to_ascii_lowercase()
            ),
            ct.attribute("charset").map(str::to_owned),
        ),
        None => ("text/plain".to_owned(), None),
    };
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject().map(str::to_owned))
        .or_else(|| header("Subject"));
    let body = parsed
        .as_ref()
        .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default();
    SmtpMessage {
        connection: 0,
        ehlo: String::new(),
        mail_from: String::new(),
        mail_options: Vec::new(),
        rcpt_tos: Vec::new(),
        data: raw,
        subject,
        content_type,
        charset,
        content_transfer_encoding: header("Content-Transfer-Encoding")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_else(|| "7bit".into()),
        body,
        headers,
        auth: None,
        tls: false,
        reply_code: None,
    }
}

/// The header section as (name, unfolded value) pairs in order.
pub(super) fn raw_headers(raw: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in raw.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => out.push((name.trim().to_owned(), value.trim().to_owned())),
            None => break, // not a header line: the body starts without a blank line
        }
    }
    out
}
