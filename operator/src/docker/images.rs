//! Images: their ids, copies from one engine to another (no registry), builds.

use bollard::query_parameters::{BuildImageOptionsBuilder, ImportImageOptionsBuilder};
use bytes::Bytes;
use futures::StreamExt;

use super::{api, is_not_found, DockerError, Engine};

/// How many times in all a copy of images between engines is tried.
const COPY_ATTEMPTS: u32 = 3;

impl Engine {
    /// The id an image reference points at, or None when the engine does not have it.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect image {image}"))(e)),
        }
    }

    /// Copies `images` from this engine into `to` (`docker save | docker load`, streamed, one
    /// archive so shared layers travel once): how images reach the hosts without a registry.
    /// A transfer that breaks off (hundreds of megabytes between two engines, either of them
    /// busy) is made again, up to [`COPY_ATTEMPTS`] times in all: loading an image twice is
    /// harmless. What the receiving engine refuses (a bad archive) is not retried.
    pub async fn copy_images(&self, images: &[&str], to: &Engine) -> Result<(), DockerError> {
        let mut attempt = 1;
        loop {
            match self.copy_once(images, to).await {
                Err(e @ DockerError::Archive { .. }) => return Err(e),
                Err(e) if attempt < COPY_ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "copying images to another engine broke off; copying again");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                done => return done,
            }
        }
    }

    async fn copy_once(&self, images: &[&str], to: &Engine) -> Result<(), DockerError> {
        let what = format!("load {} into another engine", images.join(", "));
        let tar = self.docker.export_images(images);
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut load = Box::pin(to.docker.import_image_stream(options, tar, None));
        while let Some(item) = load.next().await {
            let info = item.map_err(api(what.clone()))?;
            if let Some(message) = info.error_detail.and_then(|e| e.message) {
                return Err(DockerError::Archive { what, message });
            }
        }
        Ok(())
    }

    /// Removes an image unless a container uses it (or it is gone already).
    pub async fn remove_unused_image(&self, id: &str) -> Result<(), DockerError> {
        match self.docker.remove_image(id, None::<bollard::query_parameters::RemoveImageOptions>, None).await
        {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
            Err(e) => Err(api(format!("remove image {id}"))(e)),
        }
    }

    /// Builds an image from a tar build context; returns the builder's output.
    pub async fn build_image(&self, tag: &str, context: Vec<u8>) -> Result<String, DockerError> {
        let options = BuildImageOptionsBuilder::default().t(tag).dockerfile("Dockerfile").rm(true).build();
        let mut stream =
            Box::pin(self.docker.build_image(options, None, Some(bollard::body_full(Bytes::from(context)))));
        let mut output = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(api(format!("build {tag}")))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Build { image: tag.to_string(), message: error });
            }
            if let Some(text) = info.stream {
                output.push_str(&text);
            }
        }
        Ok(output)
    }
}
