//! Failover between gateways: refused connections, 503 and 400 move on at once; an unknown
//! outcome stops unless the route fails over, and then the result warns.

use smsgw_core::{ErrorKind, Message};
use smsgw_routing::{Reason, delivery_json};
use smsgw_testkit::Fault;

use crate::common::{Sink, gateway, kinds, refused_url, router, settle};

async fn primary_fails_backup_delivers(primary_url: &str, primary: Option<&Sink>, want: &str) {
    let backup = Sink::start().await;
    let toml = format!(
        "{}{}\n[routes.otp]\ngateways = [\"primary\", \"backup\"]\n",
        gateway("primary", primary_url, 5.0),
        gateway("backup", &backup.url(), 5.0)
    );
    let r = router(&toml);
    let d = r
        .send("otp", &Message::new("+491510001", "code 1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.gateway, "backup");
    assert_eq!(d.route.as_deref(), Some("otp"));
    assert_eq!(kinds(&d.attempts), [want, "sent"]);
    assert!(!d.may_arrive_twice);
    settle().await;
    assert_eq!(
        backup.accepted(),
        ["code 1"],
        "the backup must deliver exactly once"
    );
    if let Some(p) = primary {
        assert_eq!(p.seen().len(), 1, "the primary was asked once");
        assert!(p.accepted().is_empty());
    }
    let json = delivery_json(&Ok(d));
    assert_eq!(json["result"], "sent");
    assert_eq!(json["attempts"][0]["gateway"], "primary");
    assert_eq!(json["attempts"][0]["kind"], want);
    assert!(json["attempts"][0]["ms"].is_u64());
    assert!(json["attempts"][0]["at"].as_str().unwrap().ends_with('Z'));
    assert!(json["attempts"][0]["error"].is_string());
}

#[tokio::test]
async fn primary_refuses_the_connection() {
    primary_fails_backup_delivers(&refused_url(), None, "not_sent").await;
}

#[tokio::test]
async fn primary_answers_503() {
    let p = Sink::busy().await;
    primary_fails_backup_delivers(&p.url(), Some(&p), "not_sent").await;
}

#[tokio::test]
async fn primary_answers_400() {
    let p = Sink::start().await;
    p.http.faults().always(Fault::Reply {
        code: 400,
        text: "bad number".into(),
    });
    primary_fails_backup_delivers(&p.url(), Some(&p), "refused").await;
}

async fn timing_out_primary(on_unknown: &str) -> (Sink, Sink, smsgw_routing::Delivery) {
    let p = Sink::start().await;
    p.http.faults().always(Fault::NeverAnswer);
    let backup = Sink::start().await;
    let toml = format!(
        "{}{}\n[routes.otp]\ngateways = [\"primary\", \"backup\"]\nretries = 2\non_unknown = \"{on_unknown}\"\n",
        gateway("primary", &p.url(), 0.5),
        gateway("backup", &backup.url(), 5.0)
    );
    let d = router(&toml)
        .send("otp", &Message::new("+491510002", "code 2"))
        .await;
    settle().await;
    (p, backup, d)
}

#[tokio::test]
async fn unknown_outcome_stops_the_route() {
    let (p, backup, d) = timing_out_primary("stop").await;
    let e = d.expect_err("an unknown outcome must not be delivered elsewhere");
    assert_eq!(e.kind(), ErrorKind::Unknown);
    assert_eq!(e.reason(), Reason::OutcomeUnknown);
    assert!(e.may_have_been_sent());
    assert_eq!(kinds(e.attempts()), ["unknown"], "no retry after unknown");
    assert_eq!(p.seen().len(), 1);
    assert!(backup.seen().is_empty(), "nothing may reach the backup");
    let text = e.to_string();
    assert!(
        text.contains("route 'otp'") && text.contains("primary unknown"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_outcome_fails_over_when_asked_and_warns() {
    let (p, backup, d) = timing_out_primary("failover").await;
    let d = d.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.gateway, "backup");
    assert!(d.may_arrive_twice);
    assert!(d.warning.as_deref().unwrap().contains("may arrive twice"));
    assert_eq!(kinds(&d.attempts), ["unknown", "sent"]);
    assert_eq!(p.seen().len(), 1);
    assert_eq!(backup.accepted(), ["code 2"]);
    assert_eq!(delivery_json(&Ok(d))["may_arrive_twice"], true);
}

#[tokio::test]
async fn rules_choose_gateways_by_number_and_gateway_ids_are_targets() {
    let de = Sink::start().await;
    let other = Sink::start().await;
    let toml = format!(
        "{}{}\n[routes.otp]\ngateways = [\"other\"]\n[[routes.otp.rules]]\nmatch = \"^\\\\+49\"\ngateways = [\"de\"]\n",
        gateway("de", &de.url(), 5.0),
        gateway("other", &other.url(), 5.0)
    );
    let r = router(&toml);
    assert_eq!(
        r.send("otp", &Message::new("+4915100", "a"))
            .await
            .unwrap()
            .gateway,
        "de"
    );
    assert_eq!(
        r.send("otp", &Message::new("+3361200", "b"))
            .await
            .unwrap()
            .gateway,
        "other"
    );
    let direct = r.send("de", &Message::new("+3361200", "c")).await.unwrap();
    assert_eq!(
        (direct.gateway.as_str(), direct.route.as_deref()),
        ("de", None)
    );
    let e = r.send("nope", &Message::new("+1", "d")).await.unwrap_err();
    assert_eq!(
        (e.kind(), e.reason()),
        (ErrorKind::Config, Reason::UnknownTarget)
    );
    assert!(
        e.message().contains("routes: otp; gateways: de, other"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("'nope' is neither a route nor a gateway"),
        "{e}"
    );
    settle().await;
    assert_eq!(de.accepted(), ["a", "c"]);
    assert_eq!(other.accepted(), ["b"]);
}

#[tokio::test]
async fn build_reports_every_problem_against_the_built_gateways() {
    let toml = format!(
        "{}\n[routes.otp]\ngateways = [\"a\", \"ghost\"]\n[[routes.otp.rules]]\nmatch = \"^1\"\ngateways = [\"phantom\"]\n[routes.a]\ngateways = [\"a\"]\n",
        gateway("a", "http://127.0.0.1:9/send", 1.0)
    );
    let errs = smsgw_routing::load_toml_str(&toml).unwrap_err().to_string();
    for want in [
        "route 'otp', field 'gateways': unknown gateway 'ghost'",
        "route 'otp', field 'rules[0].gateways': unknown gateway 'phantom'",
        "route 'a': a gateway has the same name",
    ] {
        assert!(errs.contains(want), "{want:?} missing in {errs}");
    }
    let (config, _) =
        smsgw_routing::load_toml_str(&gateway("a", "http://127.0.0.1:9/send", 1.0)).unwrap();
    let gateways = smsgw_core::Gateways::build(&config, smsgw_core::Registry::global()).unwrap();
    let routing = smsgw_routing::RoutingConfig::from_toml_str(
        "[routes.otp]\ngateways = [\"a\", \"b\"]\n[gateways.c.limits]\nrate = 1\n",
    )
    .unwrap();
    let errs = smsgw_routing::Router::build(&routing, &gateways).unwrap_err();
    assert_eq!(errs.problems().len(), 2, "{errs}");
}

#[tokio::test]
async fn no_secret_in_errors_results_or_listings() {
    let p = Sink::busy().await;
    let url = p.url().replace("http://", "http://bob:url-s3cret@");
    let toml = format!(
        "[gateways.primary]\nprovider = \"http\"\noptions = {{ URL = \"{url}\", HTTP_METHOD = \"POST\", USERNAME = \"bob\", PASSWORD = \"pw-s3cret\", to = \"{{phone}}\", text = \"{{otp}}\" }}\n[routes.otp]\ngateways = [\"primary\"]\nretries = 1\nbackoff = 0\n"
    );
    let r = router(&toml);
    let e = r
        .send("otp", &Message::new("+1", "123456"))
        .await
        .unwrap_err();
    let shown = format!(
        "{e}\n{e:?}\n{}\n{}\n{:?}\n{:?}",
        delivery_json(&Err(e.clone())),
        serde_json::to_string(&r.listing()).unwrap(),
        r,
        e.to_send_error()
    );
    for secret in ["url-s3cret", "pw-s3cret", "123456"] {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    assert_eq!(kinds(e.attempts()), ["not_sent", "not_sent"]);
}
