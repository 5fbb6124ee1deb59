//! Files as messages: what `send --file` reads, what a received file's
//! record says, and how `download` writes one. The upload, the encryption
//! and the download itself are the SDK's (`sdk::media`).

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::error::{CliError, CliResult};

/// A file to send, read whole before anything is sent (a missing or
/// unreadable file stops the command with nothing half-sent).
pub(crate) struct LocalFile {
    /// The name the message carries (its `body` and `filename`).
    pub(crate) name: String,
    pub(crate) mime: mime::Mime,
    pub(crate) bytes: Vec<u8>,
    /// SHA-256 of the plaintext, hex: the send journal's identity of it.
    pub(crate) sha256: String,
}

impl LocalFile {
    /// Reads `path` (`-`: stdin, which needs `name`). `mime` overrides the
    /// type guessed from the name.
    pub(crate) fn read(path: &str, name: Option<&str>, mime: Option<&str>) -> CliResult<LocalFile> {
        let (bytes, default_name) = if path == "-" {
            let Some(name) = name else {
                return Err(CliError::usage("a file from stdin (--file -) needs --name NAME"));
            };
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| CliError::usage("could not read the file from stdin").with_source(e))?;
            (bytes, name.to_owned())
        } else {
            let p = Path::new(path);
            let shown = p.display();
            let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => CliError::usage(format!("{shown}: no such file; nothing was sent")),
                _ => CliError::usage(format!("{shown} cannot be read: {e}; nothing was sent")),
            })?;
            if meta.is_dir() {
                return Err(CliError::usage(format!("{shown} is a directory; nothing was sent"))
                    .with_hint("send the files in it one by one (--file is repeatable), or an archive of it"));
            }
            let bytes = std::fs::read(p)
                .map_err(|e| CliError::usage(format!("{shown} cannot be read: {e}; nothing was sent")))?;
            let base = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_owned());
            (bytes, base)
        };
        let name = name.map(str::to_owned).unwrap_or(default_name);
        let mime = match mime {
            Some(m) => m
                .parse::<mime::Mime>()
                .map_err(|_| CliError::usage(format!("`{m}` is not a MIME type (e.g. image/png)")))?,
            None => guess(&name),
        };
        use sha2::{Digest, Sha256};
        let sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        Ok(LocalFile { name, mime, bytes, sha256 })
    }

    /// The msgtype the file goes as, by its type.
    pub(crate) fn msgtype(&self) -> &'static str {
        match self.mime.type_() {
            mime::IMAGE => "m.image",
            mime::AUDIO => "m.audio",
            mime::VIDEO => "m.video",
            _ => "m.file",
        }
    }
}

/// The MIME type of a file name, by its extension (the common ones; others
/// are application/octet-stream: `--mime` says better).
fn guess(name: &str) -> mime::Mime {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let t = match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        _ => "application/octet-stream",
    };
    t.parse().expect("a valid MIME type")
}

/// A file a message carries, as its record shows it: never the decryption
/// key (that stays in the event; `download` uses it).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub(crate) struct FileRef {
    /// The file's name (the message's `filename`, else its `body`).
    pub(crate) name: Option<String>,
    pub(crate) size: Option<u64>,
    pub(crate) mimetype: Option<String>,
    /// The `mxc://` URI of the (encrypted, when `encrypted`) content.
    pub(crate) url: Option<String>,
    /// The content is encrypted (the event's `file`, with its key, hash and
    /// IV), not plain (`url`).
    pub(crate) encrypted: bool,
    /// An image's width and height in pixels, as its sender stated them.
    pub(crate) width: Option<u64>,
    pub(crate) height: Option<u64>,
}

impl FileRef {
    /// The file of an `m.file`, `m.image`, `m.audio` or `m.video` content.
    pub(crate) fn of(content: &serde_json::Value) -> Option<FileRef> {
        let msgtype = content["msgtype"].as_str()?;
        if !matches!(msgtype, "m.file" | "m.image" | "m.audio" | "m.video") {
            return None;
        }
        let (url, encrypted) = match content["file"]["url"].as_str() {
            Some(url) => (Some(url.to_owned()), true),
            None => (content["url"].as_str().map(str::to_owned), false),
        };
        Some(FileRef {
            name: content["filename"].as_str().or(content["body"].as_str()).map(str::to_owned),
            size: content["info"]["size"].as_u64(),
            mimetype: content["info"]["mimetype"].as_str().map(str::to_owned),
            url,
            encrypted,
            width: content["info"]["w"].as_u64(),
            height: content["info"]["h"].as_u64(),
        })
    }

    /// For a human line: `name (size, type)`.
    pub(crate) fn human(&self) -> String {
        let name = crate::ui::terminal::inert(self.name.as_deref().unwrap_or("file"));
        let mut facts = Vec::new();
        if let Some(size) = self.size {
            facts.push(format!("{size} bytes"));
        }
        if let Some(m) = &self.mimetype {
            facts.push(crate::ui::terminal::inert(m));
        }
        if let (Some(w), Some(h)) = (self.width, self.height) {
            facts.push(format!("{w}×{h}"));
        }
        if facts.is_empty() {
            format!("[file] {name}")
        } else {
            format!("[file] {name} ({})", facts.join(", "))
        }
    }
}

/// Writes a downloaded file to `path` atomically: a temporary file in the
/// same directory, synced, then renamed over the name, so no partial file
/// is ever under it. An existing file is replaced only with `force`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], force: bool) -> CliResult<()> {
    use std::io::Write;
    if path.is_dir() {
        return Err(CliError::usage(format!("{} is a directory: give a file name with -o", path.display())));
    }
    if path.exists() && !force {
        return Err(CliError::usage(format!("{} exists; nothing was written", path.display()))
            .with_hint("add --force to replace it, or give another name with -o"));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".ratchet-download-")
        .tempfile_in(dir)
        .map_err(|e| CliError::failed(format!("could not write in {}", dir.display())).with_source(e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| CliError::failed(format!("could not write {}", path.display())).with_source(e))?;
    let persisted = if force { tmp.persist(path).map(|_| ()) } else { tmp.persist_noclobber(path).map(|_| ()) };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::usage(format!("{} exists; nothing was written", path.display()))
                .with_hint("add --force to replace it, or give another name with -o")
        } else {
            CliError::failed(format!("could not write {}", path.display())).with_source(e.error)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_name_and_msgtypes() {
        assert_eq!(guess("cat.PNG").essence_str(), "image/png");
        assert_eq!(guess("notes").essence_str(), "application/octet-stream");
        let file = |mime: &str| LocalFile {
            name: "x".into(),
            mime: mime.parse().unwrap(),
            bytes: vec![],
            sha256: String::new(),
        };
        assert_eq!(file("image/png").msgtype(), "m.image");
        assert_eq!(file("audio/ogg").msgtype(), "m.audio");
        assert_eq!(file("video/mp4").msgtype(), "m.video");
        assert_eq!(file("application/pdf").msgtype(), "m.file");
    }

    #[test]
    fn a_download_never_leaves_a_partial_file_and_keeps_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomically(&path, b"one", false).unwrap();
        let err = write_atomically(&path, b"two", false).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Usage);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        write_atomically(&path, b"two", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_file_record_names_its_parts_and_no_key() {
        let content = serde_json::json!({
            "msgtype": "m.file", "body": "report.pdf",
            "info": {"size": 12, "mimetype": "application/pdf"},
            "file": {"url": "mxc://x/y", "key": {"k": "secret"}, "iv": "i", "hashes": {"sha256": "h"}, "v": "v2"}
        });
        let f = FileRef::of(&content).unwrap();
        assert!(f.encrypted);
        assert_eq!(f.url.as_deref(), Some("mxc://x/y"));
        let shown = serde_json::to_string(&f).unwrap() + f.human().as_str();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(FileRef::of(&serde_json::json!({"msgtype": "m.text", "body": "hi"})).is_none());
    }
}
