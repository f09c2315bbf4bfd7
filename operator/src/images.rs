//! `momctl build`: the broker image, from the repository's `Dockerfile` and a broker binary built
//! on this host, through the Docker API. The build context holds those two files only.

use std::path::{Path, PathBuf};

use crate::docker::{DockerError, Engine};

/// The repository's Dockerfile for the broker image.
pub const DOCKERFILE: &str = include_str!("../../Dockerfile");
/// The image every local image starts from (made by scripts/images.sh).
pub const BASE_IMAGE: &str = "mom-base:bookworm";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no broker binary found (looked for {looked}); build one with `cargo build -p mom-broker` \
         (add --release for a smaller, faster one) or pass --binary"
    )]
    NoBinary { looked: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the base image {BASE_IMAGE} is missing; make it with scripts/images.sh")]
    NoBase,
    #[error("the build context could not be packed: {0}")]
    Pack(#[source] std::io::Error),
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Where `cargo build -p mom-broker` puts the binary: the newer of release and debug.
pub fn find_binary(target_dir: Option<&Path>) -> Result<PathBuf, BuildError> {
    let target = target_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("target"));
    let candidates = [target.join("release/mom-broker"), target.join("debug/mom-broker")];
    let modified = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    candidates.iter().filter(|p| p.is_file()).max_by_key(|p| modified(p)).cloned().ok_or_else(|| {
        BuildError::NoBinary {
            looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        }
    })
}

/// The build context: the Dockerfile and the binary, as a tar archive.
fn context(binary: &Path) -> Result<Vec<u8>, BuildError> {
    let bytes =
        std::fs::read(binary).map_err(|source| BuildError::Read { path: binary.to_path_buf(), source })?;
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in
        [("Dockerfile", DOCKERFILE.as_bytes(), 0o644), ("mom-broker", bytes.as_slice(), 0o755)]
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data).map_err(BuildError::Pack)?;
    }
    tar.into_inner().map_err(BuildError::Pack)
}

/// Builds `tag` from `binary`; returns the new image's id.
pub async fn build_broker(engine: &Engine, tag: &str, binary: &Path) -> Result<String, BuildError> {
    if engine.image_id(BASE_IMAGE).await?.is_none() {
        return Err(BuildError::NoBase);
    }
    let previous = engine.image_id(tag).await?;
    let context = context(binary)?;
    let output = engine.build_image(tag, context).await?;
    tracing::debug!(%output, "build output");
    let built = engine.image_id(tag).await?;
    // The image the tag pointed at before is dropped unless a container still uses it, so that
    // repeated builds do not pile up untagged images.
    if let Some(previous) = previous.filter(|p| Some(p) != built.as_ref()) {
        engine.remove_unused_image(&previous).await?;
    }
    built.ok_or_else(|| {
        BuildError::Docker(DockerError::Build {
            image: tag.to_string(),
            message: "the image is missing after the build".into(),
        })
    })
}
