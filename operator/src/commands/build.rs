//! `momctl build`: the broker image from a broker binary built on this host.

use std::path::{Path, PathBuf};

use crate::config;
use crate::docker::Engine;
use crate::error::Error;
use crate::images;
use crate::report::{step, Reporter};

/// Builds the image `tag` (default: mom.yaml's `broker.image`) from `binary` (default: the
/// newest of `$CARGO_TARGET_DIR` or `./target`); returns the tag and the image's id.
pub async fn run(
    file: &Path,
    binary: Option<PathBuf>,
    tag: Option<String>,
    report: &dyn Reporter,
) -> Result<(String, String), Error> {
    let tag = match tag {
        Some(tag) => tag,
        None if file.exists() => super::load(file)?.settings.broker_image,
        None => config::defaults::BROKER_IMAGE.to_string(),
    };
    let binary = match binary {
        Some(path) => path,
        None => images::find_binary(std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).as_deref())?,
    };
    let engine = Engine::connect().await?;
    let what = format!("build {tag} from {}", binary.display());
    let id = step(report, what, true, images::build_broker(&engine, &tag, &binary)).await?;
    Ok((tag, id))
}
