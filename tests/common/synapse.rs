//! One throwaway Synapse per test binary, started on first use.
//!
//! `scripts/run-synapse.sh` installs the pinned Synapse into the project's
//! venv (if needed), writes its config (SQLite in a temp dir, 127.0.0.1, a
//! free port, open registration, rate limits raised) and runs it. The harness
//! holds the write end of the script's stdin; when the test process exits,
//! however it exits, the pipe closes and the script stops Synapse and deletes
//! its directory. A test that needs Synapse fails when it cannot start: it
//! never skips.

use std::fs::File;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub struct Synapse {
    pub url: String,
    pub dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    private: bool,
    /// Extra environment for scripts/run-synapse.sh (federation, TLS).
    env: Vec<(String, String)>,
    /// Its server name when it is not `localhost` (a federating one's).
    pub server_name: String,
}

static SYNAPSE: OnceLock<Synapse> = OnceLock::new();

/// The Synapse shared by the whole test binary.
pub fn synapse() -> &'static Synapse {
    SYNAPSE.get_or_init(|| Synapse::start(false))
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl Synapse {
    /// A Synapse of one test's own, which it may stop and start again (for
    /// fault tests); removed when dropped.
    pub fn private() -> Synapse {
        Synapse::start(true)
    }

    fn start(private: bool) -> Synapse {
        Synapse::start_with(private, Vec::new(), "localhost".to_owned())
    }

    /// A private Synapse whose server name is `127.0.0.1:FPORT`, served
    /// over TLS on FPORT with a certificate signed by the CA in `ca`
    /// (`ca.crt`, `ca.key`), and with `client_tls` (`well-known` or `plain`:
    /// see scripts/run-synapse.sh) for server discovery.
    pub fn with_tls_name(ca: &Path, client_tls: &str) -> Synapse {
        let fport = free_port();
        let env = vec![
            ("RATCHET_SYNAPSE_FEDERATION_PORT".to_owned(), fport.to_string()),
            ("RATCHET_SYNAPSE_CA".to_owned(), ca.display().to_string()),
            ("RATCHET_SYNAPSE_CLIENT_TLS".to_owned(), client_tls.to_owned()),
        ];
        Synapse::start_with(true, env, format!("127.0.0.1:{fport}"))
    }

    /// A private Synapse with extra environment for scripts/run-synapse.sh
    /// (RATCHET_SYNAPSE_OIDC_ISSUER, say).
    pub fn private_with(env: &[(&str, &str)]) -> Synapse {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Synapse::start_with(true, env, "localhost".to_owned())
    }

    fn start_with(private: bool, env: Vec<(String, String)>, server_name: String) -> Synapse {
        let dir = tempfile::Builder::new().prefix("ratchet-synapse-").tempdir().expect("temp dir for Synapse").keep();
        let port = free_port();
        let synapse = Synapse {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            port,
            child: Mutex::new(None),
            private,
            env,
            server_name,
        };
        synapse.run();
        synapse
    }

    /// Starts the server (again) on the same directory and port; returns
    /// once it answers.
    pub fn run(&self) {
        let log = File::options().create(true).append(true).open(self.dir.join("run-synapse.out")).expect("log file");
        // The shared server deletes its directory when the tests exit; a
        // private one keeps it across restarts and is removed on drop.
        let cleanup = !self.private && std::env::var_os("RATCHET_KEEP_SYNAPSE").is_none();
        let mut child = Command::new(repo_root().join("scripts/run-synapse.sh"))
            .arg(&self.dir)
            .arg(self.port.to_string())
            .env("RATCHET_SYNAPSE_STOP_ON_EOF", "1")
            .env("RATCHET_SYNAPSE_CLEANUP", if cleanup { "1" } else { "0" })
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("scripts/run-synapse.sh could not be started");
        // The first run installs Synapse into the venv: allow for that.
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "Synapse exited during start-up ({status}); the integration tests need it.\n{}",
                    tail(&self.dir)
                );
            }
            if ureq::get(format!("{}/_matrix/client/versions", self.url)).call().is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("Synapse did not answer on {} within 10 minutes.\n{}", self.url, tail(&self.dir));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        *self.child.lock().unwrap() = Some(child);
    }

    /// Stops the server (as if it went away) and waits until it has.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            drop(child.stdin.take()); // end-of-file: the script stops Synapse
            let _ = child.wait();
        }
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
        if self.private {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Synapse {
    /// Where Synapse's log ends now: pass it to `requests_since`.
    pub fn log_offset(&self) -> u64 {
        std::fs::metadata(self.dir.join("homeserver.log")).map(|m| m.len()).unwrap_or(0)
    }

    /// The requests `user_id` made since `offset`, as "METHOD /path" with
    /// the query string dropped, from Synapse's access log (one "Processed
    /// request" line per request, tagged with the requester).
    ///
    /// Synapse writes a line once it has sent the response, so the last one
    /// can trail the client's exit. To know the log is complete, this makes
    /// one request of its own as the same user (`token`), marked with a
    /// unique query string, and reads until that sentinel's line is there:
    /// every request ratchet made was answered before ratchet exited, so
    /// before the sentinel was sent. The sentinel is not returned.
    pub fn requests_since(&self, offset: u64, user_id: &str, token: &str) -> Vec<String> {
        use std::io::{Seek, SeekFrom};
        static SENTINELS: AtomicU32 = AtomicU32::new(0);
        let marker = format!("ratchet_sentinel={}-{}", std::process::id(), SENTINELS.fetch_add(1, Ordering::SeqCst));
        let (status, _) = api("GET", token, &format!("/_matrix/client/v3/account/whoami?{marker}"), None);
        assert_eq!(status, 200, "the sentinel request failed");
        let tag = format!("{{{user_id}}} Processed request:");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut text = String::new();
            let mut f = File::open(self.dir.join("homeserver.log")).expect("Synapse's log");
            f.seek(SeekFrom::Start(offset)).unwrap();
            f.read_to_string(&mut text).unwrap();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(&tag)).collect();
            if lines.iter().any(|l| l.contains(&marker)) {
                return lines
                    .iter()
                    .filter(|l| !l.contains(&marker))
                    .filter_map(|l| {
                        let quoted = l.split('"').nth(1)?; // GET /path?query HTTP/1.1
                        let mut parts = quoted.split(' ');
                        let (method, path) = (parts.next()?, parts.next()?);
                        Some(format!("{method} {}", path.split('?').next().unwrap_or(path)))
                    })
                    .collect();
            }
            assert!(std::time::Instant::now() < deadline, "the sentinel request never reached Synapse's log");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn tail(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["run-synapse.out", "homeserver.log"] {
        let mut text = String::new();
        if let Ok(mut f) = File::open(dir.join(name)) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        out.push_str(&format!("--- {name} (last lines) ---\n{}\n", lines[start..].join("\n")));
    }
    out
}

/// A freshly registered account.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub localpart: String,
    pub user_id: String,
    pub password: String,
}

/// Registers a new user whose name starts with `prefix` and is unique to
/// this run, so tests never share accounts.
pub fn register(prefix: &str) -> TestUser {
    register_at(&synapse().url, prefix)
}

/// Registers a new user on the homeserver at `url`.
pub fn register_at(url: &str, prefix: &str) -> TestUser {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").subsec_nanos();
    let localpart = format!("{prefix}-{}-{}-{nanos:x}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
    let password = format!("pw-{localpart}");
    // inhibit_login: registering must not create a device of its own.
    let body = json!({"username": localpart, "password": password, "inhibit_login": true,
                      "auth": {"type": "m.login.dummy"}});
    let response: Value = ureq::post(format!("{url}/_matrix/client/v3/register"))
        .send_json(&body)
        .unwrap_or_else(|e| panic!("registering {localpart} failed: {e}"))
        .body_mut()
        .read_json()
        .expect("register response");
    TestUser { user_id: response["user_id"].as_str().expect("user_id").to_owned(), localpart, password }
}

/// A client-server API call with an access token, for checks made from
/// outside ratchet (what the server really stored). Returns status and body.
pub fn api(method: &str, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", synapse().url);
    let auth = format!("Bearer {token}");
    let config = ureq::Agent::config_builder().http_status_as_error(false).build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        ("PUT", Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(&b),
        ("POST", Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(&b),
        ("DELETE", None) => agent.delete(&url).header("Authorization", &auth).call(),
        (m, _) => panic!("api(): unsupported {m}"),
    }
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let value = response.body_mut().read_json().unwrap_or(Value::Null);
    (status, value)
}

/// Percent-encodes a path segment (room ids and aliases contain `!`, `#`, `:`).
pub fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
