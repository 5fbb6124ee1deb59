//! Server discovery: the homeserver of `@alice:example.org`, found as the
//! client-server spec's "Server Discovery" says (`/.well-known/matrix/client`
//! on the server name, over HTTPS):
//!
//! 1. GET `https://SERVER_NAME/.well-known/matrix/client`.
//! 2. A 404 is "no information" (IGNORE): the server name itself is tried as
//!    the homeserver (`https://SERVER_NAME`), as the spec's fallback and
//!    every Matrix client do, and used if it answers `/versions`.
//! 3. Anything else that is not a 200 with a JSON object naming
//!    `m.homeserver.base_url` as a valid http(s) URL is FAIL_PROMPT: an
//!    error naming the URL tried (the user gives `--homeserver`).
//! 4. The base URL found must answer `/_matrix/client/versions`, or it is
//!    FAIL_ERROR: an error naming it.
//!
//! Done here with a plain HTTP client rather than matrix-sdk's builder
//! (`server_name_or_homeserver_url`), which takes any failure of the
//! `.well-known` (a malformed file, a 500) as a reason to try the server
//! name instead, and names no URL in its errors.

use std::time::Duration;

use matrix_sdk::reqwest;
use serde::Serialize;

use crate::error::{CliError, CliResult};

/// How a homeserver was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Found {
    /// `m.homeserver.base_url` of the server name's `.well-known`.
    WellKnown,
    /// The server name has no `.well-known` (404); it is the homeserver.
    ServerName,
}

/// A homeserver found for a server name.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    /// Its base URL, without a trailing slash.
    pub(crate) homeserver: String,
    pub(crate) found: Found,
    /// The `.well-known` URL asked.
    pub(crate) asked: String,
}

/// Finds the homeserver of `server_name` (the part of a user id after the
/// first `:`), waiting at most `timeout` for each request.
pub(crate) async fn discover(server_name: &str, timeout: Duration) -> CliResult<Discovered> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        // A .well-known may redirect (to a www host, say): followed, as
        // browsers and other clients do, within reqwest's default limit.
        .build()
        .map_err(|e| CliError::internal("could not make an HTTP client").with_source(e))?;
    let asked = format!("https://{server_name}/.well-known/matrix/client");
    let fail_prompt = |why: String| {
        CliError::failed(format!("could not find the homeserver of {server_name}: {asked} {why}")).with_hint(
            "give it with --homeserver https://HOMESERVER (the address your Matrix client or provider shows)",
        )
    };
    let response = http.get(&asked).send().await.map_err(|e| fail_prompt(unreachable(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        // IGNORE: the server name may be the homeserver itself.
        let homeserver = format!("https://{server_name}");
        return match versions(&http, &homeserver).await {
            Ok(()) => Ok(Discovered { homeserver, found: Found::ServerName, asked }),
            Err(why) => Err(CliError::failed(format!(
                "could not find the homeserver of {server_name}: {asked} does not exist (404), and {homeserver} is \
                 not a homeserver ({why})"
            ))
            .with_hint(
                "give it with --homeserver https://HOMESERVER (the address your Matrix client or provider shows)",
            )),
        };
    }
    if !status.is_success() {
        return Err(fail_prompt(format!("answered HTTP {status}")));
    }
    let body = response.bytes().await.map_err(|e| fail_prompt(unreachable(&e)))?;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| fail_prompt("is not JSON".to_owned()))?;
    let Some(base) = json.get("m.homeserver").and_then(|h| h.get("base_url")).and_then(|b| b.as_str()) else {
        return Err(fail_prompt("names no homeserver (no m.homeserver.base_url)".to_owned()));
    };
    let shown = crate::ui::terminal::inert(base);
    let url = url::Url::parse(base).map_err(|_| fail_prompt(format!("names `{shown}`, which is not a URL")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(fail_prompt(format!("names `{shown}`, which is not an http(s) URL")));
    }
    let homeserver = base.trim_end_matches('/').to_owned();
    // FAIL_ERROR: what it names must be a homeserver.
    versions(&http, &homeserver).await.map_err(|why| {
        CliError::failed(format!("{asked} names {shown} as the homeserver of {server_name}, but it is not one ({why})"))
            .with_hint("the server's .well-known is wrong: tell its admin, and give --homeserver meanwhile")
    })?;
    Ok(Discovered { homeserver, found: Found::WellKnown, asked })
}

/// Whether `homeserver` answers `/_matrix/client/versions` as a homeserver.
async fn versions(http: &reqwest::Client, homeserver: &str) -> Result<(), String> {
    let url = format!("{homeserver}/_matrix/client/versions");
    let response = http.get(&url).send().await.map_err(|e| unreachable(&e))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered HTTP {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| unreachable(&e))?;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| format!("{url} did not answer JSON"))?;
    if json.get("versions").and_then(|v| v.as_array()).is_none() {
        return Err(format!("{url} lists no versions"));
    }
    Ok(())
}

/// Why a request got no answer, in a person's words.
fn unreachable(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "did not answer in time".to_owned()
    } else if e.is_connect() {
        // The TLS handshake fails here too (a certificate not trusted).
        let mut why = String::from("could not be reached");
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = source {
            let text = s.to_string();
            if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
                why = format!("could not be reached over TLS ({})", crate::ui::terminal::inert(&text));
                break;
            }
            source = s.source();
        }
        why
    } else {
        "could not be read".to_owned()
    }
}

/// The server name of a full user id (`@alice:example.org` →
/// `example.org`), or `None` for a bare user name.
pub(crate) fn server_name_of(user: &str) -> Option<&str> {
    let rest = user.strip_prefix('@')?;
    let (_, server) = rest.split_once(':')?;
    (!server.is_empty()).then_some(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert_eq!(server_name_of("@alice:example.org"), Some("example.org"));
        assert_eq!(server_name_of("@alice:127.0.0.1:8448"), Some("127.0.0.1:8448"));
        assert_eq!(server_name_of("alice"), None);
        assert_eq!(server_name_of("@alice"), None);
        assert_eq!(server_name_of("@alice:"), None);
    }
}
