//! SMPP over TLS with rustls on the aws-lc-rs provider (never `ring`).
//!
//! One code path for both settings of `CHECK_SSL`: the client configuration differs only in its
//! certificate verifier — the web PKI roots with host name checking (`CHECK_SSL = yes`), or
//! [`AcceptAnyCertificate`] (`CHECK_SSL = no`), which accepts any certificate for any name on
//! purpose (test SMSCs with self-signed certificates).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

/// Why the TLS connection could not be established.
pub(crate) enum TlsError {
    /// The SMSC's certificate was not accepted (`CHECK_SSL = yes`): unknown issuer, wrong host
    /// name, expired, …; the text says which.
    Untrusted(String),
    /// Any other failure (handshake alert, connection closed, bad host name, …).
    Other(String),
}

/// `CHECK_SSL = no`: accepts every certificate for every name. The handshake signatures are still
/// checked (the peer must hold the key of the certificate it shows), which adds no trust but keeps
/// the handshake well-formed.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client configuration: aws-lc-rs explicitly, the web PKI roots when `check_ssl`, else
/// [`AcceptAnyCertificate`].
pub(crate) fn client_config(check_ssl: bool) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algorithms = provider.signature_verification_algorithms;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let config = if check_ssl {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { algorithms }))
            .with_no_client_auth()
    };
    Ok(config)
}

/// Performs the TLS handshake for `host` over `tcp`; with `check_ssl` the certificate must chain
/// to a web PKI root and name `host`.
pub(crate) async fn connect(
    tcp: TcpStream,
    host: &str,
    check_ssl: bool,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let config = client_config(check_ssl).map_err(|e| TlsError::Other(e.to_string()))?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| TlsError::Other(format!("'{host}' is not a valid TLS server name: {e}")))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            let untrusted = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
            if untrusted {
                TlsError::Untrusted(e.to_string())
            } else {
                TlsError::Other(e.to_string())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configurations_build_on_aws_lc_rs_outside_a_runtime() {
        for check in [true, false] {
            let c = client_config(check).expect("config");
            assert!(!c.crypto_provider().cipher_suites.is_empty());
        }
    }
}
