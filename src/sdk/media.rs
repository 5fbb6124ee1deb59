//! Files: uploading one (encrypted, in an encrypted room, as the spec's
//! encrypted attachments are: AES-256-CTR with a fresh key, the SHA-256 of
//! the ciphertext stated in the event), the message content that carries
//! it, and downloading one (the SDK checks the stated SHA-256 before it
//! decrypts).

use matrix_sdk::media::{MediaFormat, MediaRequestParameters};
use matrix_sdk::ruma::events::room::message::{
    AudioInfo, AudioMessageEventContent, FileInfo, FileMessageEventContent, ImageMessageEventContent, MessageType,
    RoomMessageEventContent, VideoInfo, VideoMessageEventContent,
};
use matrix_sdk::ruma::events::room::{ImageInfo, MediaSource};
use matrix_sdk::ruma::UInt;
use matrix_sdk::Client;

use crate::attach::LocalFile;
use crate::error::{CliError, CliResult};

/// Refuses files over the server's upload limit (`/media/config`, asked
/// once per client), all of them before any is sent: a batch of files
/// goes whole or not at all for this reason. An unknown limit lets the
/// upload tell.
pub(crate) async fn check_upload_limit(client: &Client, files: &[LocalFile]) -> CliResult {
    let max = match client.load_or_fetch_max_upload_size().await {
        Ok(max) => u64::from(max),
        Err(e) => {
            tracing::debug!(error = %e, "could not read the server's upload limit");
            return Ok(());
        }
    };
    match files.iter().find(|f| f.bytes.len() as u64 > max) {
        Some(file) => Err(CliError::usage(format!(
            "{} is {} bytes, over the homeserver's upload limit of {max} bytes (/media/config)",
            crate::ui::terminal::inert(&file.name),
            file.bytes.len()
        ))
        .with_hint("nothing was sent")),
        None => Ok(()),
    }
}

/// Uploads `file`, encrypted when `encrypted`; its source and `mxc://` URI.
pub(crate) async fn upload(client: &Client, file: &LocalFile, encrypted: bool) -> CliResult<(MediaSource, String)> {
    if encrypted {
        let mut reader = std::io::Cursor::new(&file.bytes);
        let sent = client
            .upload_encrypted_file(&mut reader)
            .await
            .map_err(|e| CliError::from(e).with_hint("nothing was sent to the room"))?;
        let url = sent.url.to_string();
        Ok((MediaSource::Encrypted(Box::new(sent)), url))
    } else {
        let sent = client
            .media()
            .upload(&file.mime, file.bytes.clone(), None)
            .await
            .map_err(|e| CliError::from(e).with_hint("nothing was sent to the room"))?;
        let url = sent.content_uri.to_string();
        Ok((MediaSource::Plain(sent.content_uri), url))
    }
}

/// The message that carries an uploaded file: `m.image`, `m.audio`,
/// `m.video` or `m.file` by its type, with its name, size and type (and an
/// image's width and height).
pub(crate) fn content(file: &LocalFile, source: MediaSource) -> RoomMessageEventContent {
    let size = UInt::try_from(file.bytes.len() as u64).ok();
    let mimetype = Some(file.mime.essence_str().to_owned());
    let name = file.name.clone();
    // Ruma's four contents have the same shape and no common builder.
    macro_rules! with_info {
        ($content:ident, $info:ident, $variant:ident) => {
            with_info!($content, $info, $variant, |_: &mut $info| {})
        };
        ($content:ident, $info:ident, $variant:ident, $more:expr) => {{
            let mut info = $info::new();
            info.size = size;
            info.mimetype = mimetype;
            $more(&mut info);
            let mut c = $content::new(name.clone(), source).info(Box::new(info));
            c.filename = Some(name);
            MessageType::$variant(c)
        }};
    }
    let msgtype = match file.msgtype() {
        // Its dimensions where its header says them (PNG, JPEG, GIF, WebP…):
        // Element sizes the preview from them before it downloads.
        "m.image" => with_info!(ImageMessageEventContent, ImageInfo, Image, |info: &mut ImageInfo| {
            if let Ok(dim) = imagesize::blob_size(&file.bytes) {
                info.width = UInt::try_from(dim.width as u64).ok();
                info.height = UInt::try_from(dim.height as u64).ok();
            }
        }),
        "m.audio" => with_info!(AudioMessageEventContent, AudioInfo, Audio),
        "m.video" => with_info!(VideoMessageEventContent, VideoInfo, Video),
        _ => with_info!(FileMessageEventContent, FileInfo, File),
    };
    RoomMessageEventContent::new(msgtype)
}

/// Downloads the file of a message's content (decrypted when it was
/// encrypted, after the SDK checked its SHA-256 against the event's).
pub(crate) async fn download(client: &Client, content: &serde_json::Value) -> CliResult<Vec<u8>> {
    let source: MediaSource = if content.get("file").is_some_and(|f| f.is_object()) {
        let file = serde_json::from_value(content["file"].clone())
            .map_err(|e| CliError::failed(format!("the message's encrypted file is malformed: {e}")))?;
        MediaSource::Encrypted(Box::new(file))
    } else if let Some(url) = content["url"].as_str() {
        MediaSource::Plain(url.into())
    } else {
        return Err(CliError::failed("the message carries no file"));
    };
    let request = MediaRequestParameters { source, format: MediaFormat::File };
    client.media().get_media_content(&request, false).await.map_err(|e| {
        let text = e.to_string();
        if text.to_lowercase().contains("hash") {
            CliError::failed(
                "the downloaded file is not the one its sender sent (its SHA-256 differs from the one the message \
                 states): refused, nothing was written",
            )
            .with_source(e)
        } else {
            CliError::from(e)
        }
    })
}
