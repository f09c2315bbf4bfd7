//! The cluster's local directory, `~/.momctl/<cluster>` (or `$MOMCTL_HOME/<cluster>`): its CA
//! and certificates ([`crate::pki`], [`crate::tls`]), its generated secrets ([`crate::secrets`])
//! and, on AWS, the key pair's private key. The only state momctl keeps, and none of it says what
//! the cluster has.

use std::path::PathBuf;

/// Where momctl keeps each cluster's keys and certificates (default `~/.momctl`).
pub const HOME_ENV: &str = "MOMCTL_HOME";

/// The cluster's directory of keys and certificates: `$MOMCTL_HOME/<cluster>`, by default
/// `~/.momctl/<cluster>`.
pub fn cluster_dir(cluster: &str) -> PathBuf {
    let home = std::env::var_os(HOME_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".momctl")))
        .unwrap_or_else(|| PathBuf::from(".momctl"));
    home.join(cluster)
}
