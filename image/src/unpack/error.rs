//! What the unpacker refuses ([`UnpackError`]), what it skips ([`UnpackWarning`]), and its
//! options.

use std::io;

/// Why a layer was refused. Each variant names the archive entry.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// Reading or decompressing the archive failed (truncated, not a tar, bad gzip).
    #[error("reading the layer archive: {0}")]
    Read(#[source] io::Error),
    /// A filesystem call failed for an entry.
    #[error("unpacking {entry}: {source}")]
    Io {
        /// The entry's path in the archive.
        entry: String,
        /// The error from the filesystem.
        #[source]
        source: io::Error,
    },
    /// An absolute path or a `..` component.
    #[error("layer entry {entry} escapes the image root (absolute path or '..')")]
    Escape {
        /// The entry's path in the archive.
        entry: String,
    },
    /// A parent component of the entry is a symlink (or not a directory).
    #[error("layer entry {entry}: parent {parent} is a symlink or not a directory")]
    Parent {
        /// The entry's path in the archive.
        entry: String,
        /// The offending parent, relative to the root.
        parent: String,
    },
    /// A hard link to something that is not an unpacked regular file inside the root.
    #[error(
        "layer entry {entry}: hard link target {target} is not an unpacked file inside the image"
    )]
    HardLink {
        /// The entry's path in the archive.
        entry: String,
        /// The link target as written in the archive.
        target: String,
    },
    /// A relative symlink that climbs above the root.
    #[error("layer entry {entry}: symlink target {target} escapes the image root")]
    SymlinkEscape {
        /// The entry's path in the archive.
        entry: String,
        /// The link target as written in the archive.
        target: String,
    },
    /// A character or block device.
    #[error("layer entry {entry} is a device node: refused")]
    Device {
        /// The entry's path in the archive.
        entry: String,
    },
    /// An entry type this unpacker does not know.
    #[error("layer entry {entry} has unsupported type {kind:?}")]
    Unsupported {
        /// The entry's path in the archive.
        entry: String,
        /// The tar type byte.
        kind: u8,
    },
    /// A compression other than gzip (zstd layers are not supported).
    #[error("layer compressed with {0}: only gzip and uncompressed layers are supported")]
    Compression(&'static str),
}

/// Something skipped while unpacking that does not make the image invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnpackWarning {
    /// A fifo was not created.
    SkippedFifo {
        /// The entry's path in the archive.
        entry: String,
    },
    /// The filesystem refused an extended attribute.
    Xattr {
        /// The entry's path in the archive.
        entry: String,
        /// The attribute's name.
        name: String,
    },
}

/// How to unpack.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Apply each entry's uid/gid (needs root; the store sets it when running as root).
    pub preserve_owner: bool,
}
