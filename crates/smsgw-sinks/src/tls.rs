//! The sinks' one TLS acceptor: rustls on aws-lc-rs with a fresh self-signed certificate for
//! `localhost`, `127.0.0.1` and `::1`, so that a test trusts exactly this sink by its PEM.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

/// A TLS acceptor and the certificate it presents.
pub struct SelfSigned {
    /// Accepts TLS connections with the certificate.
    pub acceptor: TlsAcceptor,
    /// The certificate in PEM (to trust it on the client side).
    pub cert_pem: String,
    /// The certificate in DER.
    pub cert_der: Vec<u8>,
}

/// A fresh self-signed certificate and an acceptor presenting it; `alpn` lists the protocols
/// offered (empty: none).
///
/// ```
/// let tls = smsgw_sinks::tls::self_signed(&[b"http/1.1"]).unwrap();
/// assert!(tls.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub fn self_signed(alpn: &[&[u8]]) -> std::io::Result<SelfSigned> {
    let ck = rcgen::generate_simple_self_signed(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(std::io::Error::other)?;
    let cert_der = ck.cert.der().to_vec();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone().into()], key)
        .map_err(std::io::Error::other)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(SelfSigned {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem: ck.cert.pem(),
        cert_der,
    })
}
