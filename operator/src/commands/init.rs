//! `momctl init`: a commented mom.yaml with safe defaults.

use std::path::Path;

use crate::config::{self, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} exists; pass --force to overwrite it")]
    Exists(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the file for `cluster` (`force`: over an existing one).
pub fn run(file: &Path, cluster: &str, force: bool) -> Result<(), InitError> {
    let name = file.display().to_string();
    if file.exists() && !force {
        return Err(InitError::Exists(name));
    }
    let text = config::default_file(cluster);
    // What init writes must itself be valid.
    config::parse(&text, &name)?.settings(&name)?;
    std::fs::write(file, text).map_err(|source| InitError::Write { path: name, source })?;
    Ok(())
}
