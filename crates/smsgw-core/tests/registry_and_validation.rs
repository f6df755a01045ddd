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

const URL: Param<url::Url, Given> = Param::url("URL", "Where to send.").required();
const HTTP_METHOD: Param<&str, Given> =
    Param::choice("HTTP_METHOD", "GET or POST.", &["GET", "POST"]).default_value("GET");
const TIMEOUT: Param<std::time::Duration, Given> =
    Param::seconds("TIMEOUT", "Seconds.").default_value("3");
const PORT: Param<u16> = Param::integer("PORT", "A port.", 1, 65535);
const CHECK_SSL: Param<bool, Given> =
    Param::yes_no("CHECK_SSL", "Verify TLS.").default_value("yes");
const PASSWORD: Param<secrecy::SecretString> = Param::secret("PASSWORD", "Secret.");
const MODE: Param<String> = Param::text("MODE", "Anything.");
const SMTPIDENTIFIER: Param<String> =
    Param::text("SMTPIDENTIFIER", "Server id.").aliases(&["SMTPIDENTIFIED"]);

fn echo_factory(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    if ctx.opt(&MODE).as_deref() == Some("broken") {
        errs.push(ctx.problem("MODE", "the factory rejects 'broken'"));
    }
    errs.into_result(Arc::new(Echo {
        gateway: ctx.gateway().to_owned(),
    }) as Arc<dyn Provider>)
}

/// Reads a parameter the "strict" descriptor does not declare: a provider bug.
fn misusing_factory(ctx: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    let _ = ctx.get(&TIMEOUT);
    Ok(Arc::new(Echo {
        gateway: ctx.gateway().to_owned(),
    }))
}

register_provider!(
    ProviderDescriptor::new("echo", "Answers every send itself.", echo_factory)
        .aliases(&["test.EchoProvider"])
        .params(&[
            URL.spec(),
            HTTP_METHOD.spec(),
            TIMEOUT.spec(),
            PORT.spec(),
            CHECK_SSL.spec(),
            PASSWORD.spec(),
            MODE.spec(),
            SMTPIDENTIFIER.spec(),
        ])
        .free_options()
        .capabilities(Capabilities::none().headers())
);

register_provider!(ProviderDescriptor::new(
    "strict",
    "Takes no free options and no headers.",
    echo_factory
));

register_provider!(ProviderDescriptor::new(
    "misuse",
    "Reads what it does not declare.",
    misusing_factory
));

// Two crates claiming one name.
register_provider!(ProviderDescriptor::new("twice", "first", echo_factory).free_options());
register_provider!(ProviderDescriptor::new("twice", "second", echo_factory).free_options());

/// A typed top-level section, `[test_servers.<id>]`: each entry needs `host`.
#[derive(Default)]
struct TestServers(Vec<String>);

impl ConfigSection for TestServers {
    const NAME: &'static str = "test_servers";
    fn load(value: &toml::Value) -> (Self, Vec<ConfigProblem>) {
        let mut out = TestServers::default();
        let mut problems = Vec::new();
        for (id, entry) in value.as_table().into_iter().flatten() {
            match entry.get("host").and_then(toml::Value::as_str) {
                Some(_) => out.0.push(id.clone()),
                None => problems.push(ConfigProblem::entry(
                    "test server",
                    id,
                    Some("host"),
                    "required",
                )),
            }
        }
        (out, problems)
    }
}
register_section!(SectionDescriptor::typed::<TestServers>("Test servers."));

fn check_limits(v: &toml::Value) -> Vec<ConfigProblem> {
    match v.get("rate").and_then(toml::Value::as_integer) {
        Some(r) if r > 0 => vec![],
        _ => vec![ConfigProblem::in_table(
            Some("rate"),
            "must be a positive integer",
        )],
    }
}
register_section!(SectionDescriptor::checked(
    "limits",
    SectionPlace::Gateway,
    "Per-gateway limits.",
    check_limits
));

#[test]
fn lookup_by_name_alias_unknown_compiled_out_and_duplicate() {
    let r = Registry::global();
    assert_eq!(r.get("echo").unwrap().name, "echo");
    assert_eq!(r.get("test.EchoProvider").unwrap().name, "echo");
    match r.get("nope") {
        Err(e @ LookupError::Unknown { .. }) => {
            let s = e.to_string();
            assert!(s.contains("unknown provider 'nope'"), "{s}");
            assert!(
                s.contains("echo, flaky, misuse, strict, twice")
                    || s.contains("echo, misuse, strict, twice"),
                "{s}"
            );
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
            assert!(e.to_string().contains("more than once"));
            assert!(e.to_string().contains("registry_and_validation"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The registry names the contested name and both registering modules.
    let dups = r.duplicates();
    assert_eq!(dups.len(), 1, "{dups:?}");
    assert_eq!(dups[0].name, "twice");
    assert_eq!(
        dups[0].modules,
        vec!["registry_and_validation", "registry_and_validation"]
    );
    assert!(
        dups[0].to_string().contains("registered 2 times"),
        "{}",
        dups[0]
    );
    let names: Vec<&str> = r.providers().iter().map(|d| d.name).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "providers are listed sorted by name");
}

const BROKEN: &str = r#"
[test_servers.a]
host = "h"
[test_servers.b]
port = 1

[gateways.limited]
provider = "echo"
options = { URL = "https://sms.example.org/send" }
limits = { rate = 0 }

[gateways.misused]
provider = "misuse"

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
        "test server 'b', field 'host': required",
        "gateway 'limited', option 'limits.rate': must be a positive integer",
        "gateway 'misused', option 'TIMEOUT': the misuse provider reads a parameter its descriptor does not declare",
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
    assert!(e.to_string().contains("unknown section 'gateway'"), "{e}");
    let e = Config::from_toml_str("[gateways.x]\nprovider = \"echo\"\n[gateways.x.limitz]\n")
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `limitz`"), "{e}");
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
[test_servers.m]
host = "smtp://u:smtp-pw-1@mail.example.org"
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

#[test]
fn typed_values_reach_the_factory_parsed_once() {
    let cfg = Config::from_toml_str(
        r#"
[test_servers.a]
host = "h"
[gateways.g]
provider = "echo"
options = { URL = "http://127.0.0.1:99/x", TIMEOUT = "0.5", PORT = "2775", SMTPIDENTIFIED = "a" }
limits = { rate = 5 }
"#,
    )
    .unwrap();
    assert!(cfg.gateways["g"].sections.contains_key("limits"));
    let gws = Gateways::build(&cfg, Registry::global()).unwrap();
    assert!(gws.get("g").is_some());
    // The censored listing keeps owned tables.
    let shown = cfg.to_toml_censored();
    assert!(
        shown.contains("[test_servers.a]") && shown.contains("rate = 5"),
        "{shown}"
    );
}

#[test]
fn a_url_that_fails_validation_never_shows_its_password() {
    let cfg = Config::from_toml_str(
        r#"
[gateways.g]
provider = "echo"
options = { URL = "https://bob:hunter2-pw@sms.example.org:99999/send?token=tok-9&to=1" }
"#,
    )
    .unwrap();
    let errs = Gateways::build(&cfg, Registry::global()).unwrap_err();
    let shown = format!("{errs}\n{cfg:?}\n{}", cfg.to_toml_censored());
    assert!(shown.contains("invalid port number"), "{shown}");
    for secret in ["hunter2-pw", "tok-9"] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
}

#[test]
fn config_files_are_read_with_a_bound() {
    let dir = std::env::temp_dir().join(format!("smsgw-core-bound-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big.toml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    std::fs::write(
        &big,
        line.repeat((MAX_CONFIG_BYTES as usize / line.len()) + 2),
    )
    .unwrap();
    let e = Config::load(&big).unwrap_err();
    assert!(e.to_string().contains("larger than 1024 KiB"), "{e}");
    // A device that never ends: fails fast, with bounded memory.
    if std::path::Path::new("/dev/zero").exists() {
        let e = Config::load(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
