//! The local state a cluster's commands work with, prepared in one explicit step: NGINX's TLS
//! material (the user's files, or a certificate signed by the cluster's CA) and the secrets
//! momctl generates, both kept in the cluster's directory ([`crate::home`]). `up` (and
//! `render`, `upgrade`) make what is missing before planning; `plan` only reads what exists
//! and says what `up` would make. Render and execution receive it; they fetch nothing.

use std::collections::BTreeMap;

use crate::config::Tls;
use crate::desired::Desired;
use crate::home::cluster_dir;
use crate::pki::PkiError;
use crate::tls::{Material, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("the cluster's generated secrets: {0}")]
    Secrets(#[from] PkiError),
    #[error("could not remove the cluster's directory {}: {source}", path.display())]
    RemoveDir { path: std::path::PathBuf, source: std::io::Error },
}

/// NGINX's certificate and key, and the cluster's generated secrets.
pub struct LocalState {
    /// `None` without TLS (or, read by `plan`, while the certificate is still to be made).
    pub tls: Option<Material>,
    /// Generated secrets by variable name (empty, read by `plan`, while still to be made).
    pub generated: BTreeMap<String, String>,
    /// What `up` would still make (read by `plan`; empty once prepared).
    pub missing: Vec<String>,
}

impl LocalState {
    /// Makes what is missing (the CA and NGINX's certificate with `self_signed`, the generated
    /// secrets) and returns all of it.
    pub fn prepare(desired: &Desired) -> Result<LocalState, LocalError> {
        let tls = crate::tls::material(desired)?;
        let generated = crate::secrets::ensure(&cluster_dir(&desired.cluster))?;
        Ok(LocalState { tls, generated, missing: Vec::new() })
    }

    /// What exists, writing nothing; [`LocalState::missing`] says what `up` would make.
    pub fn read(desired: &Desired) -> Result<LocalState, LocalError> {
        let tls = crate::tls::existing(desired)?;
        let mut missing = Vec::new();
        if tls.is_none() && desired.tls == Some(Tls::SelfSigned) {
            missing.push("NGINX's certificate, signed by the cluster's CA".to_string());
        }
        let generated = crate::secrets::read(&cluster_dir(&desired.cluster))?;
        if generated.is_none() {
            missing
                .push("the cluster's generated secrets (Redis password, ZooKeeper credential)".to_string());
        }
        Ok(LocalState { tls, generated: generated.unwrap_or_default(), missing })
    }
}
