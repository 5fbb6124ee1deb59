//! Test harness: the real `ratchet` binary run with a clean environment in a
//! temporary home, against the throwaway Synapse of `synapse.rs`.

#![allow(dead_code)] // each test module uses a different part of the harness

pub mod js_peer;
pub mod peer;
pub mod synapse;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub use synapse::{api, enc, register, register_at, synapse, Synapse, TestUser};

/// Every command path, for the tests that walk them all (help, snapshots).
pub const COMMANDS: &[&[&str]] = &[
    &[],
    &["login"],
    &["logout"],
    &["whoami"],
    &["sync"],
    &["send"],
    &["chat"],
    &["messages"],
    &["encrypt"],
    &["sessions"],
    &["rotate"],
    &["devices"],
    &["identity"],
    &["trust"],
    &["verify"],
    &["certify"],
    &["olm"],
    &["unwedge"],
    &["doctor"],
    &["room"],
    &["room", "create"],
    &["room", "join"],
    &["room", "invite"],
    &["room", "leave"],
    &["room", "list"],
    &["room", "info"],
    &["room", "members"],
    &["keys"],
    &["keys", "request"],
    &["keys", "export"],
    &["keys", "import"],
    &["recovery"],
    &["recovery", "enable"],
    &["recovery", "recover"],
    &["recovery", "reset"],
    &["recovery", "status"],
    &["backup"],
    &["backup", "status"],
    &["backup", "restore"],
    &["debug"],
    &["debug", "forget-olm"],
    &["debug", "forget-room-key"],
    &["completions"],
    &["man"],
];

/// How long any single ratchet invocation may take before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

pub struct TestEnv {
    home: TempDir,
    extra_env: Vec<(String, String)>,
}

/// What one invocation did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TestEnv {
    pub fn new() -> Self {
        TestEnv {
            home: tempfile::Builder::new().prefix("ratchet-test-").tempdir().expect("temp home"),
            extra_env: Vec::new(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Where ratchet keeps the profiles (XDG_DATA_HOME/ratchet).
    pub fn data_dir(&self) -> PathBuf {
        self.home.path().join("data").join("ratchet")
    }

    pub fn profile_dir(&self, profile: &str) -> PathBuf {
        self.data_dir().join(profile)
    }

    /// An environment variable set for every later invocation.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// The command, with only what ratchet needs in its environment.
    pub fn command(&self, profile: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ratchet"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_DATA_HOME", self.home.path().join("data"))
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("XDG_CACHE_HOME", self.home.path().join("cache"))
            .env("RATCHET_PROFILE", profile)
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("RUST_BACKTRACE", "0")
            .env("RATCHET_HINT_LOG", self.home.path().join("hints.log"));
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, profile: &str, args: &[&str]) -> Run {
        self.run_with(self.command(profile, args), None)
    }

    /// A command line ratchet suggested (`ratchet …`), pasted into bash as
    /// it was printed, with this environment (and `ratchet` on the PATH).
    pub fn paste(&self, line: &str) -> Run {
        assert!(line.starts_with("ratchet "), "a suggested command starts with ratchet: {line}");
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_ratchet")).parent().expect("bin dir").to_owned();
        let mut cmd = self.command("", &[]);
        cmd.env_remove("RATCHET_PROFILE");
        let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut bash = Command::new("bash");
        bash.args(["--norc", "--noprofile", "-c", line]).env_clear();
        for (k, v) in cmd.get_envs() {
            if let (Some(k), Some(v)) = (k.to_str(), v) {
                bash.env(k, v);
            }
        }
        bash.env("PATH", path);
        self.run_with(bash, None)
    }

    pub fn run_stdin(&self, profile: &str, args: &[&str], stdin: &[u8]) -> Run {
        self.run_with(self.command(profile, args), Some(stdin))
    }

    /// Runs a prepared command to completion (killed after COMMAND_LIMIT).
    pub fn run_with(&self, cmd: Command, stdin: Option<&[u8]>) -> Run {
        self.run_with_limit(cmd, stdin, COMMAND_LIMIT)
    }

    /// [`TestEnv::run_with`], killed after `limit`; a command killed so
    /// shows what it had written to stderr.
    pub fn run_with_limit(&self, mut cmd: Command, stdin: Option<&[u8]>, limit: Duration) -> Run {
        let out_path = tempfile::NamedTempFile::new_in(self.home.path()).expect("stdout file");
        let err_path = tempfile::NamedTempFile::new_in(self.home.path()).expect("stderr file");
        cmd.stdout(File::create(out_path.path()).expect("stdout"))
            .stderr(File::create(err_path.path()).expect("stderr"))
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("ratchet binary runs");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(bytes).expect("write stdin");
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let stderr = std::fs::read_to_string(err_path.path()).unwrap_or_default();
                panic!(
                    "ratchet {:?} did not finish within {limit:?}; its stderr:\n{stderr}",
                    cmd.get_args().collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let read = |p: &Path| {
            let mut s = String::new();
            File::open(p).expect("output file").read_to_string(&mut s).expect("utf-8 output");
            s
        };
        let run =
            Run { code: status.code().unwrap_or(-1), stdout: read(out_path.path()), stderr: read(err_path.path()) };
        json_only(&cmd, &run);
        run
    }

    /// Logs `user` in under `profile`; returns the login record.
    pub fn login(&self, profile: &str, user: &TestUser) -> Value {
        self.login_at(profile, user, &synapse().url)
    }

    /// `ratchet GLOBAL… login --homeserver URL --user USER --password-stdin
    /// EXTRA…` with the password piped in; the run, whatever its outcome.
    pub fn login_with(&self, profile: &str, user: &TestUser, url: &str, global: &[&str], extra: &[&str]) -> Run {
        let mut args: Vec<&str> = global.to_vec();
        args.extend(["login", "--homeserver", url, "--user", &user.localpart, "--password-stdin"]);
        args.extend_from_slice(extra);
        self.run_stdin(profile, &args, format!("{}\n", user.password).as_bytes())
    }

    /// Logs `user` in with `--isolation all-devices` (remembered for the
    /// profile): for tests with the nio peer, which cannot cross-sign its
    /// device, so in exclude-insecure mode (MSC4153) neither side would read
    /// the other.
    pub fn login_all_devices(&self, profile: &str, user: &TestUser) -> Value {
        let run = self.login_with(profile, user, &synapse().url, &["--json", "--isolation", "all-devices"], &[]);
        run.success().records("login").remove(0)
    }

    /// Logs `user` in on the homeserver at `url`.
    pub fn login_at(&self, profile: &str, user: &TestUser, url: &str) -> Value {
        let run = self.login_with(profile, user, url, &["--json"], &[]).success();
        let records = run.records("login");
        assert_eq!(records.len(), 1, "one login record: {run:?}");
        records[0].clone()
    }

    /// The access token ratchet saved for `profile` (test-only: to check on
    /// the server what ratchet did).
    pub fn token(&self, profile: &str) -> String {
        // Kept encrypted in session.json (issue 31): asked of ratchet, as a
        // script would.
        let run = self.run(profile, &["whoami", "--access-token"]).success();
        run.stdout.trim().to_owned()
    }

    /// Sets the room's history visibility as `profile` (through the server,
    /// not ratchet: ratchet has no command for it).
    pub fn set_history_visibility(&self, profile: &str, room: &str, visibility: &str) {
        let (status, reply) = api(
            "PUT",
            &self.token(profile),
            &format!("/_matrix/client/v3/rooms/{}/state/m.room.history_visibility/", enc(room)),
            Some(serde_json::json!({ "history_visibility": visibility })),
        );
        assert_eq!(status, 200, "{reply}");
    }

    /// A new environment with alice and bob logged in (profiles "alice" and
    /// "bob") and both in a new encrypted room created by alice with
    /// `extra` options; returns the room id too.
    pub fn alice_and_bob(extra: &[&str]) -> (TestEnv, TestUser, TestUser, String) {
        let env = TestEnv::new();
        let (alice, bob) = (register("alice"), register("bob"));
        env.login("alice", &alice);
        env.login("bob", &bob);
        let room = env.encrypted_room("alice", &[("bob", &bob)], extra);
        (env, alice, bob, room)
    }

    /// alice (profile "alice", all-devices isolation) and a nio peer (user
    /// nina) in a new encrypted room made by alice; returns both users, the
    /// peer and the room id.
    pub fn alice_and_nio(&self) -> (TestUser, TestUser, peer::NioPeer, String) {
        let (alice, nina) = (register("alice"), register("nina"));
        self.login_all_devices("alice", &alice);
        let nio = peer::NioPeer::login(self, &nina);
        let room = self.encrypted_room("alice", &[], &["--invite", &nina.user_id]);
        nio.join(self, &room);
        (alice, nina, nio, room)
    }

    /// Creates an encrypted room as `owner`, invites and joins each of
    /// `members`; returns the room id.
    pub fn encrypted_room(&self, owner: &str, members: &[(&str, &TestUser)], extra: &[&str]) -> String {
        let mut args = vec!["--json", "room", "create", "--encrypted"];
        for (_, user) in members {
            args.push("--invite");
            args.push(&user.user_id);
        }
        args.extend_from_slice(extra);
        let run = self.run(owner, &args).success();
        let room_id = run.records("room")[0]["room_id"].as_str().expect("room_id").to_owned();
        for (profile, _) in members {
            self.run(profile, &["--json", "room", "join", &room_id]).success();
        }
        room_id
    }
}

impl Run {
    /// Asserts exit 0, showing everything the command printed if not.
    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "command failed:\n--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
        assert_eq!(
            self.code, expected,
            "unexpected exit code:\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Every stdout line, parsed as JSON (panics on a line that is not).
    #[track_caller]
    pub fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
            .collect()
    }

    /// The JSON records of one type.
    #[track_caller]
    pub fn records(&self, kind: &str) -> Vec<Value> {
        self.json().into_iter().filter(|r| r["type"] == kind).collect()
    }

    /// The `error:` lines on stderr; under --json, the JSON error line
    /// rendered the same way (`error: MESSAGE`).
    pub fn error_lines(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| {
                if l.starts_with("error:") {
                    return Some(l.to_owned());
                }
                let v: Value = serde_json::from_str(l).ok()?;
                (v["type"] == "error").then(|| format!("error: {}", v["message"].as_str().unwrap_or_default()))
            })
            .collect()
    }
}

/// `wrapper wrapper_args… ratchet args…`: the ratchet command of `profile`
/// run by another program (a pty, `faketime`), with ratchet's environment.
pub fn wrapped(env: &TestEnv, profile: &str, args: &[&str], wrapper: &str, wrapper_args: &[&str]) -> Command {
    let inner = env.command(profile, args);
    let mut cmd = Command::new(wrapper);
    cmd.args(wrapper_args).arg(inner.get_program()).args(inner.get_args());
    cmd.env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd
}

/// Runs `program args` inside a pseudo-terminal (so stdin *is* a terminal),
/// using Python's pty module; returns the exit code and everything shown.
pub fn run_in_pty(env: &TestEnv, profile: &str, args: &[&str]) -> (i32, String) {
    const SCRIPT: &str =
        "import os, pty, sys\nstatus = pty.spawn(sys.argv[1:])\nsys.exit(os.waitstatus_to_exitcode(status))";
    let run = env.run_with(wrapped(env, profile, args, "python3", &["-c", SCRIPT]), None);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

/// Like [`run_in_pty`], typing an answer at each prompt: `dialogue` is
/// (text the program shows, line to type) pairs, answered in order, each
/// only once its prompt has appeared. Returns the exit code and everything
/// shown on the terminal.
pub fn run_in_pty_typing(env: &TestEnv, profile: &str, args: &[&str], dialogue: &[(&str, &str)]) -> (i32, String) {
    const SCRIPT: &str = r#"
import os, pty, sys, select, time, termios
n = int(sys.argv[1])
pairs = [(sys.argv[2 + 2 * i].encode(), sys.argv[3 + 2 * i].encode()) for i in range(n)]
argv = sys.argv[2 + 2 * n:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
shown, seen_upto, deadline = b"", 0, time.time() + 100
while True:
    if pairs:
        at = shown.find(pairs[0][0], seen_upto)
        if at >= 0:
            seen_upto = at + len(pairs[0][0])
            # A secret prompt turns echo off just after printing itself:
            # wait for that (up to 2 s), as a person's typing would.
            until = time.time() + 2
            while time.time() < until and termios.tcgetattr(fd)[3] & termios.ECHO:
                time.sleep(0.01)
            os.write(fd, pairs[0][1] + b"\r")
            pairs.pop(0)
    ready, _, _ = select.select([fd], [], [], 0.1)
    if ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        shown += data
    if time.time() > deadline:
        os.kill(pid, 9)
        break
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(shown)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let count = dialogue.len().to_string();
    let mut script_args = vec!["-c", SCRIPT, count.as_str()];
    for (prompt, answer) in dialogue {
        script_args.extend([*prompt, *answer]);
    }
    let run = env.run_with(wrapped(env, profile, args, "python3", &script_args), None);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

/// A ratchet process running in the background, read as it goes: for
/// commands that wait on another party (`verify`), driven line by line.
pub struct Background {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<(bool, String)>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl TestEnv {
    /// Starts `ratchet args` for `profile` with piped stdin, stdout, stderr.
    pub fn spawn(&self, profile: &str, args: &[&str]) -> Background {
        let mut cmd = self.command(profile, args);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("ratchet runs");
        let (tx, lines) = std::sync::mpsc::channel();
        for (is_err, stream) in [
            (false, Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>),
            (true, Box::new(child.stderr.take().unwrap()) as Box<dyn Read + Send>),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((is_err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Background { child, stdin, lines, stdout: Vec::new(), stderr: Vec::new() }
    }
}

impl Background {
    fn take_line(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok((true, line)) => {
                self.stderr.push(line);
                true
            }
            Ok((false, line)) => {
                self.stdout.push(line);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits until stderr has a line containing `text`.
    #[track_caller]
    pub fn wait_for_stderr(&mut self, text: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.stderr.iter().any(|l| l.contains(text)) {
            assert!(self.take_line(until), "no `{text}` on stderr in {limit:?}: {:?} / {:?}", self.stderr, self.stdout);
        }
    }

    /// Waits for the first JSON record of `kind` on stdout.
    #[track_caller]
    pub fn wait_for_record(&mut self, kind: &str, limit: Duration) -> Value {
        self.wait_for_match(&format!("`{kind}` record"), |v| v["type"] == kind, limit)
    }

    /// Waits for a JSON record on stdout that `pred` accepts.
    #[track_caller]
    pub fn wait_for_match(&mut self, what: &str, pred: impl Fn(&Value) -> bool, limit: Duration) -> Value {
        let until = Instant::now() + limit;
        loop {
            let found = self.stdout.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| pred(v));
            if let Some(v) = found {
                return v;
            }
            assert!(self.take_line(until), "no {what} in {limit:?}: {:?} / {:?}", self.stdout, self.stderr);
        }
    }

    /// Sends it a signal (`-INT`, `-TERM`).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    /// Writes one line to its stdin.
    pub fn answer(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Waits for the process to exit (killed after `limit`).
    pub fn finish(mut self, limit: Duration) -> Run {
        drop(self.stdin.take());
        let until = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("background ratchet did not finish in {limit:?}: {:?} / {:?}", self.stdout, self.stderr);
            }
            self.take_line(Instant::now() + Duration::from_millis(50));
        };
        while self.take_line(Instant::now() + Duration::from_millis(200)) {}
        Run { code: status.code().unwrap_or(-1), stdout: self.stdout.join("\n"), stderr: self.stderr.join("\n") }
    }
}

/// Every suggested command the environment's runs printed (ratchet's debug
/// hook `RATCHET_HINT_LOG`, see `src/ui/hint.rs`) is pasted into a shell
/// when the environment goes away, as a person would (issue 20):
/// - as bash splits it, it gives exactly the arguments ratchet meant
///   (quoting: `$event` ids, spaces);
/// - typed into an interactive bash, history expansion leaves it alone
///   (`!room` ids) and, with `--help` appended, ratchet accepts every
///   option (a stale flag fails);
/// - one for this profile names it (`--profile`), since the shell it is
///   pasted into need not have `RATCHET_PROFILE` set.
impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        check_hints(self);
    }
}

pub fn check_hints(env: &TestEnv) {
    let Ok(log) = std::fs::read_to_string(env.home.path().join("hints.log")) else { return };
    let mut seen = std::collections::BTreeSet::new();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_ratchet")).parent().expect("bin dir").to_owned();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for entry in log.lines() {
        if !seen.insert(entry.to_owned()) {
            continue;
        }
        let mut parts = entry.splitn(3, '\t');
        let (whose, line, argv) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let argv: Vec<String> = serde_json::from_str(argv).expect("hint argv");
        let words = line.strip_prefix("ratchet ").unwrap_or_else(|| panic!("a hint starts with ratchet: {line}"));
        if whose == "ours" {
            assert!(argv.iter().any(|a| a == "--profile"), "a hint for this profile names it: {line}");
        }
        // How bash splits it.
        let split = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &format!("printf '%s\\0' {words}")])
            .env_clear()
            .output()
            .expect("bash");
        let got: Vec<String> =
            String::from_utf8_lossy(&split.stdout).split('\0').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        assert_eq!(got, argv, "bash splits the hint `{line}` differently");
        // Pasted into an interactive shell, with --help: parses.
        let mut shell = Command::new("bash")
            .args(["--norc", "--noprofile", "-i"])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", env.home.path())
            .env("XDG_DATA_HOME", env.home.path().join("data"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash");
        {
            let mut stdin = shell.stdin.take().expect("stdin");
            // Under --json, help is the usage error "help is not data"
            // (after the whole line parsed), which counts as parsing too.
            writeln!(
                stdin,
                "{{ {line} --help >/dev/null 2>&1 || {line} --help 2>&1 | grep -q 'help is not data'; }} && echo PARSED"
            )
            .expect("write");
            writeln!(stdin, "exit").expect("write");
        }
        let out = shell.wait_with_output().expect("bash");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("PARSED"), "the hint `{line}` does not paste: {stderr}");
    }
}

/// The `--json` contract on every path (issue 20): an invocation with
/// `--json` (and no `-v`, whose log lines go to stderr by request), failing
/// or not, prints JSON lines only, on stdout and on stderr.
fn json_only(cmd: &Command, run: &Run) {
    // ratchet itself, not a wrapper (the pty runs answer prompts, which a
    // terminal shows as text).
    if cmd.get_program() != env!("CARGO_BIN_EXE_ratchet") {
        return;
    }
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let before_dashes = || args.iter().take_while(|a| *a != "--");
    let json = before_dashes().any(|a| a == "--json");
    let verbose = before_dashes().any(|a| (a.starts_with("-v") || a.starts_with("-qv")) || a == "--verbose");
    let logging = cmd.get_envs().any(|(k, v)| (k == "RATCHET_LOG" || k == "RUST_LOG") && v.is_some());
    if !json || verbose || logging || run.code == -1 {
        return;
    }
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let parsed: Result<Value, _> = serde_json::from_str(line);
            assert!(
                parsed.as_ref().is_ok_and(|v| v["type"].is_string()),
                "ratchet {args:?} (exit {}) printed a non-JSON line on {stream} under --json: {line}",
                run.code
            );
        }
    }
}
