//! Secrets momctl makes for each cluster, so no user has to invent them: the password Redis
//! requires and the ZooKeeper digest credential the brokers own their znodes with. They are
//! kept in the cluster's local directory (`$MOMCTL_HOME/<cluster>/cluster-secrets.env`, mode
//! 0600, beside the PKI) and reach the containers only as environment set through the Docker
//! API (or compose's `.env`, written 0600 by `render`); never in mom.yaml, a plan, a label or
//! a log line.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::pki::{write_file, PkiError};

/// The file in the cluster's directory.
pub const FILE: &str = "cluster-secrets.env";
/// The password of Redis (`requirepass`), as the redis and broker containers see it.
pub const REDIS_PASSWORD: &str = "MOM_REDIS_PASSWORD";
/// The brokers' ZooKeeper digest credential, `mom:<password>`.
pub const ZK_AUTH: &str = "MOM_ZK_AUTH";

/// 24 random bytes from the kernel, hex: 192 bits, and nothing that needs quoting in a URL, a
/// shell or a Redis configuration line.
fn random_hex() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The cluster's generated secrets by variable name, made (and saved) on first use.
pub fn ensure(dir: &Path) -> Result<BTreeMap<String, String>, PkiError> {
    let mut values = read_file(dir)?;
    if missing(&values) {
        let path = dir.join(FILE);
        let io = |what: &'static str| {
            let path = path.clone();
            move |source| PkiError::Io { what, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
        if values.get(REDIS_PASSWORD).is_none_or(|v| v.is_empty()) {
            values.insert(REDIS_PASSWORD.to_string(), random_hex().map_err(io("generate"))?);
        }
        if values.get(ZK_AUTH).is_none_or(|v| v.is_empty()) {
            values.insert(ZK_AUTH.to_string(), format!("mom:{}", random_hex().map_err(io("generate"))?));
        }
        write_file(&path, &env_file(&values), true)?;
    }
    Ok(values)
}

/// The cluster's generated secrets when every one of them is made already (nothing is written).
pub fn read(dir: &Path) -> Result<Option<BTreeMap<String, String>>, PkiError> {
    let values = read_file(dir)?;
    Ok((!missing(&values)).then_some(values))
}

fn missing(values: &BTreeMap<String, String>) -> bool {
    [REDIS_PASSWORD, ZK_AUTH].iter().any(|k| values.get(*k).is_none_or(|v| v.is_empty()))
}

/// What the file holds (nothing when it is not there).
fn read_file(dir: &Path) -> Result<BTreeMap<String, String>, PkiError> {
    let path = dir.join(FILE);
    let mut values = BTreeMap::new();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
                if let Some((k, v)) = line.split_once('=') {
                    values.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(PkiError::Io { what: "read", path, source }),
    }
    Ok(values)
}

/// `NAME=value` lines, as compose's `.env` and this module's file hold them.
pub fn env_file(values: &BTreeMap<String, String>) -> String {
    let mut text = String::from(
        "# Secrets momctl generated for this cluster. Keep this file private (mode 0600); losing it\n\
         # locks the brokers out of the cluster's ZooKeeper tree.\n",
    );
    for (k, v) in values {
        text.push_str(&format!("{k}={v}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("momctl-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = ensure(&dir).expect("made");
        assert_eq!(first[REDIS_PASSWORD].len(), 48);
        assert!(first[ZK_AUTH].starts_with("mom:"));
        let mode = std::fs::metadata(dir.join(FILE)).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ensure(&dir).expect("read"), first, "kept, not remade");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
