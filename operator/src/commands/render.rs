//! `momctl render --out DIR`: the files `up` would deploy, for `docker compose` users; one
//! directory per host when the cluster spans several.

use std::path::{Path, PathBuf};

use crate::desired::Desired;
use crate::error::Error;
use crate::local::LocalState;
use crate::render;

/// Writes the files under `out`; returns the paths written.
pub fn run(file: &Path, out: &Path) -> Result<Vec<PathBuf>, Error> {
    let desired = super::load(file)?.desired;
    // The certificate and the generated secrets the files carry.
    let local = LocalState::prepare(&desired)?;
    // One directory per host when the cluster spans several (`host-1`, …).
    let parts: Vec<Desired> = if desired.hosts > 1 {
        (1..=desired.hosts).map(|h| desired.on_host(h)).collect()
    } else {
        vec![desired]
    };
    let mut written = Vec::new();
    for part in &parts {
        let mut files = render::host_files(part, local.tls.as_ref())?;
        files.extend(render::secret_files(&local.generated));
        written.extend(render::write_files(&out.join(&part.host), &files)?);
    }
    Ok(written)
}
