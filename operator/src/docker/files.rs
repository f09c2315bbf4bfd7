//! Files in containers: copied in (nginx.conf, a certificate) and read back.

use std::io::Read;

use bollard::query_parameters::{DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder};
use bytes::Bytes;
use futures::StreamExt;

use super::{api, is_not_found, DockerError, Engine};

impl Engine {
    /// Copies one file into a container (created or running), replacing what was there.
    pub async fn write_file(&self, container: &str, path: &str, content: &str) -> Result<(), DockerError> {
        self.write_file_mode(container, path, content, 0o644).await
    }

    /// [`Engine::write_file`] with the file's permissions (a private key: 0600).
    pub async fn write_file_mode(
        &self,
        container: &str,
        path: &str,
        content: &str,
        mode: u32,
    ) -> Result<(), DockerError> {
        let (dir, file) = path.rsplit_once('/').unwrap_or(("/", path));
        let dir = if dir.is_empty() { "/" } else { dir };
        let archive_error = |e: std::io::Error| DockerError::Archive {
            what: format!("packing {path} for {container}"),
            message: e.to_string(),
        };
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, file, content.as_bytes()).map_err(archive_error)?;
        let tar = builder.into_inner().map_err(archive_error)?;
        let options = UploadToContainerOptionsBuilder::default().path(dir).build();
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(Bytes::from(tar)))
            .await
            .map_err(api(format!("copy {path} into {container}")))
    }

    /// Reads one file out of a container; None when it is not there.
    pub async fn read_file(&self, container: &str, path: &str) -> Result<Option<String>, DockerError> {
        let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = self.docker.download_from_container(container, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(api(format!("read {path} from {container}"))(e)),
            }
        }
        let archive_error = |e: std::io::Error| DockerError::Archive {
            what: format!("reading {path} from {container}"),
            message: e.to_string(),
        };
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().map_err(archive_error)?;
        match entries.next() {
            Some(entry) => {
                let mut content = String::new();
                entry.map_err(archive_error)?.read_to_string(&mut content).map_err(archive_error)?;
                Ok(Some(content))
            }
            None => Ok(None),
        }
    }
}
