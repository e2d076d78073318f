//! HTTPS for the hub: with `tls_cert` and `tls_key` (PEM) set, every
//! connection is TLS (rustls, HTTP/1.1 by ALPN). Both or neither must be set.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::HubConfig;

/// The acceptor for the configured certificate, or `None` for plain HTTP.
pub fn acceptor(cfg: &HubConfig) -> anyhow::Result<Option<TlsAcceptor>> {
    let (cert, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) => (c, k),
        _ => anyhow::bail!("set both tls_cert and tls_key to serve HTTPS, or neither"),
    };
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key in {} (tls_key)", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("tls_cert and tls_key do not make a usable certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let what = || format!("reading the certificates in {} (tls_cert)", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .with_context(what)?
        .collect::<Result<Vec<_>, _>>()
        .with_context(what)?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no PEM certificate (tls_cert)", path.display());
    }
    Ok(chain)
}
