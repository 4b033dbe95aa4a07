//! TLS for HTTPS and gRPC checks: a rustls client (the `ring` provider) over a glommio `TcpStream`
//! (futures-rustls drives rustls over the stream's futures `AsyncRead`/`AsyncWrite`).
//!
//! Verification: the system's root certificates (loaded once, on a thread of their own, never on a
//! shard) and the name in `tls_server_name`, or the target's host when that is empty (an IP literal is
//! verified against the certificate's IP SANs and sends no SNI). `tls_skip_verify` accepts any
//! certificate, still checking the handshake signatures with the certificate's key.

use super::checks::TlsOptions;
use futures_rustls::client::TlsStream;
use futures_rustls::TlsConnector;
use glommio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, OnceLock};

/// The ALPN protocol of HTTP/2 (gRPC over TLS asks for it).
pub const ALPN_H2: &[u8] = b"h2";

static SYSTEM_ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();

/// The system's root certificates when already loaded.
pub fn loaded_roots() -> Option<Arc<RootCertStore>> {
    SYSTEM_ROOTS.get().cloned()
}

/// Loads the system's root certificates once (blocking file reads: call it off the shard); certificates
/// that do not parse are left out.
pub fn load_system_roots() -> Arc<RootCertStore> {
    Arc::clone(SYSTEM_ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(found.certs);
        Arc::new(store)
    }))
}

/// A client configuration: verifying against `roots` (none needed with `skip_verify`), offering `alpn`.
pub fn client_config(
    roots: Option<Arc<RootCertStore>>,
    skip_verify: bool,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots = roots.unwrap_or_else(|| Arc::new(RootCertStore::empty()));
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The name a check's TLS connection verifies and sends: `tls_server_name`, else `host`.
pub fn server_name(options: &TlsOptions, host: &str) -> Result<ServerName<'static>, String> {
    let name = if options.server_name.is_empty() {
        host
    } else {
        options.server_name.as_str()
    };
    ServerName::try_from(name.to_string()).map_err(|e| format!("bad TLS server name {name:?}: {e}"))
}

/// Runs the client handshake over `tcp`.
pub async fn handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<TlsStream<TcpStream>, String> {
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))
}

/// `tls_skip_verify`: any certificate is accepted; handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_configs() {
        let options = TlsOptions::default();
        assert!(matches!(
            server_name(&options, "127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(&options, "example.com"),
            Ok(ServerName::DnsName(_))
        ));
        let named = TlsOptions {
            server_name: "api.internal".to_string(),
            skip_verify: false,
        };
        let Ok(ServerName::DnsName(name)) = server_name(&named, "127.0.0.1") else {
            panic!("tls_server_name is not used");
        };
        assert_eq!(name.as_ref(), "api.internal");
        assert!(server_name(&options, "bad name!").is_err());
        let config = client_config(None, true, &[ALPN_H2]).expect("config");
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(client_config(None, false, &[]).is_ok());
    }
}
