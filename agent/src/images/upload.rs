//! `image load`'s archive as it arrives from the leader: written to a temporary file in the
//! store's `tmp/` (emptied when the store opens), at most the size the leader allows. The file
//! goes away with its [`tempfile::TempPath`], whatever happens next.

use std::path::{Path, PathBuf};

use shoal_proto::pb;
use tokio::io::AsyncWriteExt;
use tokio_stream::{Stream, StreamExt};

/// Why the archive could not be received (nothing was loaded).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The leader ended the stream with an error (the client left, the archive too large).
    #[error("the upload broke off: {0}; nothing was loaded")]
    Broken(String),
    /// More bytes than allowed.
    #[error("the archive is larger than {max} bytes; nothing was loaded")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The temporary file could not be written.
    #[error("image load: writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Writes `chunks` to a new temporary file in `dir`, failing past `max` bytes (0: no limit).
pub async fn receive<S>(
    mut chunks: S,
    dir: &Path,
    max: u64,
) -> Result<tempfile::TempPath, UploadError>
where
    S: Stream<Item = Result<pb::ImageLoadChunk, tonic::Status>> + Unpin,
{
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UploadError::Io { path, source }
    };
    let (file, path) = tempfile::NamedTempFile::new_in(dir)
        .map_err(io(dir))?
        .into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut total = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|s| UploadError::Broken(s.message().to_string()))?;
        total += chunk.data.len() as u64;
        if max > 0 && total > max {
            return Err(UploadError::TooLarge { max });
        }
        file.write_all(&chunk.data).await.map_err(io(&path))?;
    }
    file.flush().await.map_err(io(&path))?;
    file.sync_all().await.map_err(io(&path))?;
    Ok(path)
}
