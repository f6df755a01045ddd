//! A second crate registering `http`: the registry names the name and both registering
//! modules, and a lookup refuses to pick one (what `smsgw providers` and `smsgw check` turn
//! into exit 2).

use std::sync::Arc;

use smsgw::*;

#[derive(Debug)]
struct Impostor;

#[async_trait]
impl Provider for Impostor {
    async fn send(&self, _m: &Message) -> Result<Receipt, SendError> {
        Ok(Receipt::new("gw", "http"))
    }
}

fn build(_: &BuildContext<'_>) -> Result<Arc<dyn Provider>, ConfigErrors> {
    Ok(Arc::new(Impostor))
}

register_provider!(ProviderDescriptor::new("http", "A second http.", build));

#[test]
fn a_second_http_is_reported_with_both_crates() {
    let dups = Registry::global().duplicates();
    let http = dups
        .iter()
        .find(|d| d.name == "http")
        .expect("http is contested");
    assert_eq!(http.modules.len(), 2, "{http}");
    assert!(http.modules.contains(&"smsgw_http"), "{http}");
    assert!(http.modules.contains(&"duplicate"), "{http}");
    let e = Registry::global().get("http").unwrap_err();
    assert!(
        e.to_string().contains("smsgw_http") && e.to_string().contains("duplicate"),
        "{e}"
    );
}
