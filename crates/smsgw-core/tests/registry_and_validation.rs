//! Registry lookup and validation, with providers registered by this test binary through inventory.

use std::sync::Arc;

use smsgw_core::*;

#[derive(Debug)]
struct Echo {
    gateway: String,
}

#[async_trait]
impl Provider for Echo {
    async fn send(&self, m: &Message) -> Result<Receipt, SendError> {
        if m.text == "refuse" {
            return Err(SendError::new(ErrorKind::Refused, &self.gateway, "no").with_code("42"));
        }
        Ok(Receipt::new(&self.gateway, "echo").with_id(m.phone.clone()))
    }
}

fn echo_factory(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    if ctx.get("MODE") == Some("broken") {
        errs.push(ctx.problem("MODE", "the factory rejects 'broken'"));
    }
    errs.into_result(Arc::new(Echo {
        gateway: ctx.gateway.to_owned(),
    }) as Arc<dyn Provider>)
}

const ECHO_PARAMS: &[ParamSpec] = &[
    ParamSpec::new("URL", "Where to send.")
        .required()
        .kind(ParamKind::Url),
    ParamSpec::new("HTTP_METHOD", "GET or POST.")
        .allowed(&["GET", "POST"])
        .default_value("GET"),
    ParamSpec::new("TIMEOUT", "Seconds.")
        .kind(ParamKind::Seconds)
        .default_value("3"),
    ParamSpec::new("PORT", "A port.").kind(ParamKind::Integer { min: 1, max: 65535 }),
    ParamSpec::new("CHECK_SSL", "Verify TLS.")
        .kind(ParamKind::YesNo)
        .default_value("yes"),
    ParamSpec::new("PASSWORD", "Secret.").secret(),
    ParamSpec::new("MODE", "Anything."),
    ParamSpec::new("SMTPIDENTIFIER", "Server id.").aliases(&["SMTPIDENTIFIED"]),
];

register_provider!(ProviderDescriptor {
    name: "echo",
    aliases: &["test.EchoProvider"],
    description: "Answers every send itself.",
    params: ECHO_PARAMS,
    free_options: true,
    headers: true,
    capabilities: Capabilities::none(),
    factory: echo_factory,
});

register_provider!(ProviderDescriptor {
    name: "strict",
    aliases: &[],
    description: "Takes no free options and no headers.",
    params: &[],
    free_options: false,
    headers: false,
    capabilities: Capabilities::none(),
    factory: echo_factory,
});

// Two crates claiming one name.
register_provider!(ProviderDescriptor {
    name: "twice",
    aliases: &[],
    description: "first",
    params: &[],
    free_options: true,
    headers: false,
    capabilities: Capabilities::none(),
    factory: echo_factory,
});
register_provider!(ProviderDescriptor {
    name: "twice",
    aliases: &[],
    description: "second",
    params: &[],
    free_options: true,
    headers: false,
    capabilities: Capabilities::none(),
    factory: echo_factory,
});

#[test]
fn lookup_by_name_alias_unknown_compiled_out_and_duplicate() {
    let r = Registry::global();
    assert_eq!(r.get("echo").unwrap().name, "echo");
    assert_eq!(r.get("test.EchoProvider").unwrap().name, "echo");
    match r.get("nope") {
        Err(e @ LookupError::Unknown { .. }) => {
            let s = e.to_string();
            assert!(s.contains("unknown provider 'nope'"), "{s}");
            assert!(s.contains("echo, strict, twice"), "{s}");
        }
        other => panic!("{other:?}"),
    }
    // smsgw-core alone links no built-in provider: http is known but compiled out.
    for name in [
        "smpp",
        "privacyidea.lib.smsprovider.SmppSMSProvider.SmppSMSProvider",
    ] {
        match r.get(name) {
            Err(e @ LookupError::NotCompiledIn { .. }) => {
                assert!(e.to_string().contains("enable the feature \"smpp\""), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
    match r.get("twice") {
        Err(e @ LookupError::Duplicate { count: 2, .. }) => {
            assert!(e.to_string().contains("more than once"))
        }
        other => panic!("{other:?}"),
    }
    let names: Vec<&str> = r.providers().iter().map(|d| d.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "providers are listed sorted by name");
}

const BROKEN: &str = r#"
[smtp_servers.mail]
server = "ftp://mail.example.org"
sender = "not-an-address"
timeout = -1

[gateways.good]
provider = "echo"
options = { URL = "https://sms.example.org/send", to = "{phone}" }

[gateways.bad]
provider = "echo"
[gateways.bad.options]
HTTP_METHOD = "PUT"
TIMEOUT = "soon"
PORT = "70000"
CHECK_SSL = "maybe"
REGEXP = "/(unclosed/x/"
PASSWORD = "hunter2-secret"

[gateways.badurl]
provider = "echo"
options = { URL = "not a url", SMTPIDENTIFIER = "a", SMTPIDENTIFIED = "b" }

[gateways.strict]
provider = "strict"
options = { extra = "1" }
headers = { X-A = "1" }

[gateways.unknown]
provider = "carrier-pigeon"

[gateways.factory]
provider = "echo"
options = { URL = "http://127.0.0.1/", MODE = "broken" }

[gateways.placeholder]
provider = "echo"
options = { URL = "http://127.0.0.1/", PASSWORD = "__FILL_IN__" }
"#;

#[test]
fn validation_reports_every_problem_at_once() {
    let cfg = Config::from_toml_str(BROKEN).unwrap();
    let errs = Gateways::build(&cfg, Registry::global()).unwrap_err();
    let text = errs.to_string();
    let expect = [
        "smtp server 'mail', field 'server': scheme 'ftp' is not smtp:// or smtps://",
        "smtp server 'mail', field 'sender': 'not-an-address' is not an email address",
        "smtp server 'mail', field 'timeout'",
        "gateway 'bad', option 'URL': required",
        "gateway 'bad', option 'HTTP_METHOD': 'PUT' is not one of GET, POST",
        "gateway 'bad', option 'TIMEOUT': 'soon' is not a number of seconds",
        "gateway 'bad', option 'PORT': 70000 is outside 1..=65535",
        "gateway 'bad', option 'CHECK_SSL': 'maybe' is not yes or no",
        "gateway 'bad', option 'REGEXP': the pattern does not compile",
        "gateway 'badurl', option 'URL': 'not a url' is not a valid URL",
        "gateway 'badurl', option 'SMTPIDENTIFIER': set more than once",
        "gateway 'strict', option 'extra': the strict provider takes no free options",
        "gateway 'strict', headers: the strict provider sends no headers",
        "gateway 'unknown', provider: unknown provider 'carrier-pigeon'",
        "gateway 'factory', option 'MODE': the factory rejects 'broken'",
        "gateway 'placeholder', option 'PASSWORD': still holds the placeholder __FILL_IN__",
    ];
    for e in expect {
        assert!(text.contains(e), "missing «{e}» in:\n{text}");
    }
    assert_eq!(errs.problems().len(), expect.len(), "{text}");
    assert!(
        !text.contains("good"),
        "a valid gateway is not reported: {text}"
    );
    assert!(!text.contains("hunter2"), "no secret in errors: {text}");
}

#[test]
fn config_file_errors_name_the_place() {
    let e = Config::from_toml_str("[gateways.x]\nprovider = 1\n").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    let e = Config::from_toml_str(
        "[gateways.x]\nprovider = \"http\"\noptions = { CHECK_SSL = true }\n",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("write the value as a string (\"yes\")"),
        "{e}"
    );
    let e = Config::from_toml_str("[gateway.x]\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `gateway`"), "{e}");
    let ok = Config::from_toml_str(
        "[gateways.x]\nprovider = \"echo\"\noptions = { URL = \"http://h/\", PORT = 2775, PARAMETER = { id = \"a\", ttl = 5 } }\n",
    )
    .unwrap();
    assert_eq!(ok.gateways["x"].options["PORT"], "2775");
    assert_eq!(
        ok.gateways["x"].options["PARAMETER"],
        r#"{"id":"a","ttl":5}"#
    );
}

#[test]
fn secrets_never_in_debug_or_export() {
    let cfg = Config::from_toml_str(
        r#"
[smtp_servers.m]
server = "mail.example.org"
sender = "a@example.org"
username = "u"
password = "smtp-pw-1"
[gateways.g]
provider = "echo"
options = { URL = "https://u:url-pw-2@h/", PASSWORD = "pw-3", password = "pw-4", api_key = "key-5", PARAMETER = '{"id":"x","secret":"pw-6"}' }
headers = { Authorization = "Bearer tok-7", X-Api-Key = "key-8" }
"#,
    )
    .unwrap();
    let shown = format!("{cfg:?}\n{}", cfg.to_toml_censored());
    for s in [
        "smtp-pw-1",
        "url-pw-2",
        "pw-3",
        "pw-4",
        "key-5",
        "pw-6",
        "tok-7",
        "key-8",
    ] {
        assert!(!shown.contains(s), "{s} leaked:\n{shown}");
    }
    assert!(shown.contains(CENSORED));
    // The uncensored form is available on purpose (for generating files).
    assert!(cfg.to_toml(false).contains("pw-3"));
}

#[tokio::test]
async fn gateway_applies_regexp_and_classifies() {
    let cfg = Config::from_toml_str(
        r#"
[gateways.g]
provider = "echo"
options = { URL = "http://127.0.0.1/", REGEXP = '/^\+49/0/' }
"#,
    )
    .unwrap();
    let gws = Gateways::build(&cfg, Registry::global()).unwrap();
    let g = gws.get("g").unwrap();
    let r = g.send(&Message::new("+491511234567", "hi")).await.unwrap();
    assert_eq!(r.message_ids, vec!["01511234567"]);
    let e = g.send(&Message::new("+49", "refuse")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(!e.is_retry_safe() && !e.may_have_been_sent());
    assert!(e.to_string().contains("gateway 'g'"));
    let e = g.send(&Message::new("  ", "x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let outcomes = g
        .send_all(
            (0..50)
                .map(|i| Message::new(format!("+49{i}"), "x"))
                .collect(),
            8,
        )
        .await;
    assert_eq!(outcomes.len(), 50);
    assert!(
        outcomes
            .iter()
            .enumerate()
            .all(|(i, o)| o.index == i && o.result.is_ok())
    );
}
