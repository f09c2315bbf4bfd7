//! TLS at NGINX (`nginx.tls`): the certificate and key NGINX serves, from the user's files or
//! signed by the cluster's CA ([`crate::pki`], the same one that secures the Docker API on AWS).
//! They reach the container through the Docker API like nginx.conf; nginx.conf names the
//! certificate's fingerprint, so a new certificate is a changed configuration that `up` copies
//! in and reloads.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Tls;
use crate::desired::Desired;
use crate::home::cluster_dir;
use crate::pki::{write_file, Pki, PkiError};

/// The self-signed certificate and key in the cluster's directory, and the names it was made for.
const SELF_CERT: &str = "nginx-cert.pem";
const SELF_KEY: &str = "nginx-key.pem";
const SELF_NAMES: &str = "nginx-cert.names";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("nginx.tls: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nginx.tls: {path} holds no PEM {what}")]
    NotPem { path: PathBuf, what: &'static str },
    #[error("nginx.tls self_signed: {0}")]
    Pki(#[from] PkiError),
}

/// The certificate (chain) and key NGINX serves, PEM.
pub struct Material {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Material {
    /// Names this pair in nginx.conf: a new certificate or key changes the configuration.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.cert_pem.as_bytes());
        h.update(self.key_pem.as_bytes());
        h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
    }
}

/// Names a self-signed certificate is made for: loopback, and the bind address when it is a
/// specific one.
pub fn names(bind: Ipv4Addr) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), Ipv4Addr::LOCALHOST.to_string()];
    if !bind.is_unspecified() && !bind.is_loopback() {
        names.push(bind.to_string());
    }
    names
}

fn read(path: &Path, what: &'static str) -> Result<String, TlsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TlsError::Read { path: path.to_path_buf(), source })?;
    if !text.contains("-----BEGIN") {
        return Err(TlsError::NotPem { path: path.to_path_buf(), what });
    }
    Ok(text)
}

/// What NGINX serves for `desired`, or `None` without TLS. `self_signed` makes the CA and the
/// certificate in the cluster's directory on first use and keeps them (a new one only when the
/// names it must carry changed): `up`'s preparation ([`crate::local::LocalState::prepare`]).
pub fn material(desired: &Desired) -> Result<Option<Material>, TlsError> {
    match &desired.tls {
        Some(Tls::SelfSigned) => {
            if let Some(kept) = kept(desired)? {
                return Ok(Some(kept));
            }
            let dir = cluster_dir(&desired.cluster);
            let (cert, key, names_file) = (dir.join(SELF_CERT), dir.join(SELF_KEY), dir.join(SELF_NAMES));
            let pki = Pki::ensure(&dir, &desired.cluster)?;
            let made = pki.server_cert_for(&names(desired.endpoint.bind))?;
            write_file(&key, &made.key_pem, true)?;
            write_file(&cert, &made.cert_pem, false)?;
            write_file(&names_file, &names(desired.endpoint.bind).join(","), false)?;
            Ok(Some(Material { cert_pem: made.cert_pem, key_pem: made.key_pem }))
        }
        _ => existing(desired),
    }
}

/// [`material`] as it is now, writing nothing (`plan`): `None` also when the self-signed
/// certificate is still to be made.
pub fn existing(desired: &Desired) -> Result<Option<Material>, TlsError> {
    match &desired.tls {
        None => Ok(None),
        Some(Tls::Files { cert, key }) => {
            Ok(Some(Material { cert_pem: read(cert, "certificate")?, key_pem: read(key, "private key")? }))
        }
        Some(Tls::SelfSigned) => kept(desired),
    }
}

/// The self-signed certificate kept in the cluster's directory, when it carries the names
/// `desired` needs.
fn kept(desired: &Desired) -> Result<Option<Material>, TlsError> {
    let dir = cluster_dir(&desired.cluster);
    let wanted = names(desired.endpoint.bind).join(",");
    let (cert, key, names_file) = (dir.join(SELF_CERT), dir.join(SELF_KEY), dir.join(SELF_NAMES));
    let kept = std::fs::read_to_string(&names_file).ok();
    if kept.as_deref() == Some(wanted.as_str()) && cert.exists() && key.exists() {
        return Ok(Some(Material {
            cert_pem: read(&cert, "certificate")?,
            key_pem: read(&key, "private key")?,
        }));
    }
    Ok(None)
}
