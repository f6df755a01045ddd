//! Fails (exit 1) unless the umbrella built with only `http` registers exactly `http`, and names
//! the feature for the providers it left out.
use smsgw::{LookupError, Registry};

fn main() {
    let names = Registry::global().names();
    assert_eq!(names, vec!["http".to_owned()], "registry of an http-only build");
    for p in ["smpp", "smtp", "sipgate"] {
        match Registry::global().get(p) {
            Err(LookupError::NotCompiledIn { feature, .. }) => assert_eq!(feature, p),
            other => panic!("{p}: expected NotCompiledIn, got {other:?}"),
        }
    }
    assert_eq!(smsgw::ENABLED_FEATURES, &["http"]);
    println!("one-feature build: registry holds exactly {names:?}");
}
