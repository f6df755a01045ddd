//! What the umbrella's features promise is what the registry holds (the linker drops a provider
//! crate that no code names, and its registration with it).

#[test]
fn every_enabled_provider_is_registered() {
    let names = smsgw::Registry::global().names();
    assert_eq!(names, ["http", "sipgate", "smpp", "smtp"]);
    let mut features = smsgw::ENABLED_FEATURES.to_vec();
    features.sort();
    assert_eq!(names, features);
    for (name, _, module) in smsgw::BUILTIN_PROVIDERS {
        assert_eq!(smsgw::Registry::global().get(module).unwrap().name, *name);
    }
}
