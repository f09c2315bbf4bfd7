//! The certificates of the Docker API on EC2 hosts (mutual TLS on port 2376), made by momctl
//! itself with rcgen: a CA per cluster, one client certificate for momctl, and a server
//! certificate per host for its public (Elastic) IP address.
//!
//! The CA key and the client key stay in the cluster's local directory (mode 0600); a host's
//! server key travels only in that host's user data. Docker's file names are used (`ca.pem`,
//! `cert.pem`, `key.pem`), so `docker --tlsverify -H tcp://IP:2376` works from that directory too
//! (`DOCKER_CERT_PATH=<dir>`).

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const CLIENT_CERT: &str = "cert.pem";
pub const CLIENT_KEY: &str = "key.pem";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A server certificate and its key, PEM.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The cluster's CA, loaded from (or first made in) its directory.
pub struct Pki {
    dir: PathBuf,
    cluster: String,
    ca_key: KeyPair,
    pub ca_cert_pem: String,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PkiError + 'a {
    move |source| PkiError::Io { what, path: path.to_path_buf(), source }
}

/// Writes `content` to `path` readable by the owner only when `secret` (the mode is set when the
/// file is created, so no other user can open it in between).
pub fn write_file(path: &Path, content: &str, secret: bool) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    options.mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(io("write", path))?;
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io("protect", path))?;
    }
    file.write_all(content.as_bytes()).map_err(io("write", path))
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "momctl");
    dn.push(DnType::CommonName, format!("mom {cluster} Docker CA"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

impl Pki {
    /// The CA and momctl's client certificate in `dir`, made on first use.
    pub fn ensure(dir: &Path, cluster: &str) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let ca_path = dir.join(CA_CERT);
        let ca_key_path = dir.join(CA_KEY);
        let (ca_key, ca_cert_pem, fresh) = if ca_path.exists() && ca_key_path.exists() {
            let key_pem = std::fs::read_to_string(&ca_key_path).map_err(io("read", &ca_key_path))?;
            let cert_pem = std::fs::read_to_string(&ca_path).map_err(io("read", &ca_path))?;
            (KeyPair::from_pem(&key_pem)?, cert_pem, false)
        } else {
            let key = KeyPair::generate()?;
            let cert = ca_params(cluster).self_signed(&key)?;
            write_file(&ca_key_path, &key.serialize_pem(), true)?;
            write_file(&ca_path, &cert.pem(), false)?;
            (key, cert.pem(), true)
        };
        let pki = Pki { dir: dir.to_path_buf(), cluster: cluster.to_string(), ca_key, ca_cert_pem };
        if fresh || !dir.join(CLIENT_CERT).exists() || !dir.join(CLIENT_KEY).exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, format!("momctl {cluster}"));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let cert = params.signed_by(&key, &pki.issuer())?;
            write_file(&dir.join(CLIENT_KEY), &key.serialize_pem(), true)?;
            write_file(&dir.join(CLIENT_CERT), &cert.pem(), false)?;
        }
        Ok(pki)
    }

    fn issuer(&self) -> Issuer<'static, &KeyPair> {
        // The CA's subject and key identify it; both are rebuilt exactly as they were made.
        Issuer::new(ca_params(&self.cluster), &self.ca_key)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate for a Docker daemon reached at `ip` (and as `name`).
    pub fn server_cert(&self, name: &str, ip: Ipv4Addr) -> Result<ServerCert, PkiError> {
        self.server_cert_for(&[ip.to_string(), name.to_string()])
    }

    /// A server certificate for `names` (host names or IP addresses; the first is its CN), e.g.
    /// NGINX's with `nginx.tls: self_signed`.
    pub fn server_cert_for(&self, names: &[String]) -> Result<ServerCert, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let name = names.last().map(String::as_str).unwrap_or("mom");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let cert = params.signed_by(&key, &self.issuer())?;
        Ok(ServerCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_private_and_the_ca_is_kept() {
        let dir = std::env::temp_dir().join(format!("momctl-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Pki::ensure(&dir, "demo").expect("pki");
        for (file, mode) in [(CA_KEY, 0o600), (CLIENT_KEY, 0o600), (CA_CERT, 0o644), (CLIENT_CERT, 0o644)] {
            let meta = std::fs::metadata(dir.join(file)).expect("file");
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
        }
        let again = Pki::ensure(&dir, "demo").expect("pki again");
        assert_eq!(first.ca_cert_pem, again.ca_cert_pem, "the CA is loaded, not remade");
        let server =
            again.server_cert("mom-demo-host-1", Ipv4Addr::new(198, 51, 100, 7)).expect("server cert");
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server.key_pem.contains("PRIVATE KEY"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
