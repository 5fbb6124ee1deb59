//! Signing in with a browser from a terminal, for single sign-on
//! (`m.login.sso`) and OAuth 2.0 (next-generation auth): the identity
//! provider chosen, a loopback redirect on 127.0.0.1, the URL shown (and a
//! browser opened on a desktop), and what the browser comes back with: the
//! `loginToken` for `login`'s `m.login.token` login, or the authorization
//! code for the SDK's OAuth 2.0 `finish_login`.
//!
//! As matrix-sdk's `sso-login` feature does it, with three differences:
//! - the redirect URL carries a random `state` of ratchet's own, and an
//!   answer without it is refused (the whole login stops: a page that sends
//!   a login token to this port was not opened by this login — login CSRF),
//!   where the SDK takes any token that reaches the port;
//! - it waits a bounded time (`--sso-timeout`) and then stops, nothing made;
//! - on a machine without a desktop it only prints the URL (the SDK's
//!   caller decides), which `--no-browser` asks for anywhere.
//!
//! Nothing here sees the user's password: that stays between the browser
//! and the identity provider.

use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::error::{CliError, CliResult};
use crate::ui::output::{Output, Record};

/// An identity provider the homeserver offers.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// The `sso` record: where to sign in. Printed before the wait, so that a
/// script (or a test) can take the URL to its own browser.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SsoRecord {
    /// The URL to open in a browser.
    url: String,
    /// The identity provider chosen, if the server offers several.
    provider: Option<String>,
    /// The loopback address the browser comes back to.
    redirect: String,
    /// Whether ratchet opened a browser itself.
    browser_opened: bool,
}

impl Record for SsoRecord {
    const TYPE: &'static str = "sso";
    fn human(&self) -> String {
        let opened = if self.browser_opened { " (opened in your browser)" } else { "" };
        format!("Sign in at this address{opened}:\n\n  {}\n", self.url)
    }
}

/// Chooses the identity provider: `wanted` (by id or name), the only one,
/// or, with several and none wanted, a usage error listing them (a prompt
/// would not work from a script, and the list is short).
pub(crate) fn choose<'a>(providers: &'a [Provider], wanted: Option<&str>) -> CliResult<Option<&'a Provider>> {
    let list = || {
        providers
            .iter()
            .map(|p| format!("{} ({})", p.id, crate::ui::terminal::inert(&p.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (wanted, providers) {
        (Some(w), _) => {
            providers.iter().find(|p| p.id == w || p.name.eq_ignore_ascii_case(w)).map(Some).ok_or_else(|| {
                CliError::usage(format!(
                    "the homeserver offers no identity provider `{}`",
                    crate::ui::terminal::inert(w)
                ))
                .with_hint(format!("it offers: {}", if providers.is_empty() { "none by name".into() } else { list() }))
            })
        }
        (None, []) => Ok(None),
        (None, [one]) => Ok(Some(one)),
        (None, _) => Err(CliError::usage("the homeserver offers several identity providers: choose one with --idp ID")
            .with_hint(format!("they are: {}", list()))),
    }
}

/// Which sign-in comes back to the loopback, and what it brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// `m.login.sso`: `/sso?state=S&loginToken=T` (the state is ratchet's,
    /// in the redirect URL it gives the homeserver).
    Sso,
    /// OAuth 2.0: `/oauth?code=C&state=S` (the state is the SDK's, in the
    /// authorization URL).
    OAuth,
}

impl Flow {
    fn path(self) -> &'static str {
        match self {
            Flow::Sso => "/sso",
            Flow::OAuth => "/oauth",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Flow::Sso => "loginToken",
            Flow::OAuth => "code",
        }
    }
}

/// Where the browser is sent, and the state its answer must carry.
pub(crate) struct Start {
    pub(crate) url: String,
    pub(crate) state: String,
}

/// A fresh random `state` (32 hex digits).
pub(crate) fn new_state() -> String {
    crate::profile::session::key_to_hex(&crate::profile::session::generate_key())[..32].to_owned()
}

/// Runs the browser side of a sign-in: shows (and maybe opens) the URL,
/// and waits at most `timeout` for the browser to come back to the
/// loopback with the same state. Returns what it brought: the login token
/// (`Flow::Sso`), or the whole query of the redirect (`Flow::OAuth`, for
/// the SDK's `finish_login`). `start` is given the loopback's base address
/// (`http://127.0.0.1:PORT`) and asks the homeserver for the URL that
/// starts the sign-in and ends there (at `flow`'s path).
pub(crate) async fn sign_in<F, Fut>(
    out: &Output,
    flow: Flow,
    start: F,
    provider: Option<&Provider>,
    open_browser: bool,
    timeout: Duration,
) -> CliResult<crate::profile::session::Secret>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = CliResult<Start>>,
{
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| CliError::failed("could not listen on 127.0.0.1 for the sign-in's redirect").with_source(e))?;
    let port = listener.local_addr().map_err(|e| CliError::internal("no local address").with_source(e))?.port();
    let Start { url, state } = start(format!("http://127.0.0.1:{port}")).await?;
    let browser_opened = open_browser && open_in_browser(&url);
    out.data(&SsoRecord {
        url: url.clone(),
        provider: provider.map(|p| p.id.clone()),
        redirect: format!("http://127.0.0.1:{port}{}", flow.path()),
        browser_opened,
    })?;
    out.status(format!("Waiting for the sign-in (at most {} s)…", timeout.as_secs()));
    let wait = async {
        loop {
            let (mut stream, _) = listener
                .accept()
                .await
                .map_err(|e| CliError::failed("the sign-in's redirect could not be received").with_source(e))?;
            match answer(&mut stream, flow, &state).await {
                Answer::Came(what) => return Ok(what),
                Answer::WrongState => {
                    return Err(CliError::failed(
                        "a sign-in answer came to this login's address with a state it did not start (another \
                         page sent it); nothing was logged in",
                    )
                    .with_hint("start the login again, and sign in from the address it prints"));
                }
                Answer::Error(why) => {
                    return Err(CliError::auth(format!(
                        "the sign-in came back without a login: {}",
                        crate::ui::terminal::inert(&why)
                    )));
                }
                // Not the redirect (a favicon, a probe): keep waiting.
                Answer::Other => continue,
            }
        }
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        Err(_) => Err(CliError::failed(format!(
            "no sign-in came back within {} s (the browser was closed, or the sign-in not finished); nothing was \
             logged in",
            timeout.as_secs()
        ))
        .with_hint("run the same login again, or give more time with --sso-timeout SECONDS")),
    }
}

enum Answer {
    Came(crate::profile::session::Secret),
    WrongState,
    Error(String),
    Other,
}

/// Reads one HTTP request from the browser and answers it.
async fn answer(stream: &mut tokio::net::TcpStream, flow: Flow, state: &str) -> Answer {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    // The request line is all that is needed; a browser sends it at once.
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while len < buf.len() {
            match stream.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
            if buf[..len].windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    })
    .await;
    let line = String::from_utf8_lossy(&buf[..len]).lines().next().unwrap_or_default().to_owned();
    let target = line.split(' ').nth(1).unwrap_or_default();
    let url = url::Url::parse(&format!("http://127.0.0.1{target}")).ok();
    let (answer, status, page) = match url {
        Some(url) if read.is_ok() && url.path() == flow.path() => {
            let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
            if query.get("state").map(String::as_str) != Some(state) {
                (
                    Answer::WrongState,
                    "400 Bad Request",
                    "This sign-in was not started by ratchet here. Nothing was logged in.",
                )
            } else if let Some(value) = query.get(flow.key()) {
                let came = match flow {
                    Flow::Sso => value.clone(),
                    Flow::OAuth => url.query().unwrap_or_default().to_owned(),
                };
                (
                    Answer::Came(crate::profile::session::Secret::new(came)),
                    "200 OK",
                    "Signed in. You can close this tab and go back to the terminal.",
                )
            } else {
                let why = query.get("error").cloned().unwrap_or_else(|| format!("no {}", flow.key()));
                (Answer::Error(why), "400 Bad Request", "The sign-in did not finish. See the terminal.")
            }
        }
        _ => (Answer::Other, "404 Not Found", "Not found."),
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ratchet</title></head><body><p>{page}</p></body></html>"
    );
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
    answer
}

/// Opens `url` in the desktop's browser (`xdg-open`), when there is a
/// desktop session; whether it started one.
/// An approval page the server named (MSC4312's, or user-interactive
/// auth's): opened only when it is a web page over HTTPS (or plain HTTP on
/// this machine). Another scheme from the network (file:, smb:, an
/// application's handler) is printed, never opened.
pub(crate) fn open_approval(url: &str) -> bool {
    is_web_page(url) && open_in_browser(url)
}

fn is_web_page(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "https"
            || (u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
    })
}

fn open_in_browser(url: &str) -> bool {
    let desktop = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !desktop {
        return false;
    }
    std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, name: &str) -> Provider {
        Provider { id: id.into(), name: name.into() }
    }

    #[test]
    fn only_web_pages_are_opened_as_approvals() {
        assert!(is_web_page("https://account.example.org/?action=org.matrix.cross_signing_reset"));
        assert!(is_web_page("http://127.0.0.1:8008/_matrix/client/v3/auth/m.login.sso/fallback/web?session=x"));
        for bad in ["http://evil.example/", "file:///etc/passwd", "smb://host/share", "javascript:alert(1)", "nonsense"]
        {
            assert!(!is_web_page(bad), "{bad}");
        }
    }

    #[test]
    fn providers_are_chosen_by_id_or_name_or_alone() {
        let two = [p("oidc-a", "Alpha"), p("oidc-b", "Beta")];
        assert_eq!(choose(&two, Some("oidc-b")).unwrap().unwrap().id, "oidc-b");
        assert_eq!(choose(&two, Some("alpha")).unwrap().unwrap().id, "oidc-a");
        let err = choose(&two, None).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::Usage);
        assert!(err.hints[0].contains("oidc-a (Alpha), oidc-b (Beta)"), "{:?}", err.hints);
        assert!(choose(&two, Some("gamma")).is_err());
        assert_eq!(choose(&[p("x", "X")], None).unwrap().unwrap().id, "x");
        assert!(choose(&[], None).unwrap().is_none());
    }
}
