//! Encrypted files (issue 32, part 1): `send --file` and `download`, proven
//! by a client that shares none of matrix-sdk's code (the nio peer, with
//! its own AES-CTR attachment encryption) both ways, and by ratchet's own
//! second user; a file changed on the server is refused; bad input stops
//! with nothing sent or written.

use serde_json::Value;

use crate::common::{synapse, TestEnv};

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Some bytes that are not text (every byte value, a few times over).
fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn a_file_ratchet_sends_is_read_by_nio_and_by_bob() {
    let env = TestEnv::new();
    let (_alice, _nina, nio, room) = env.alice_and_nio();
    let bytes = payload(70_000);
    let path = env.home().join("data.bin");
    std::fs::write(&path, &bytes).unwrap();
    let sent = env
        .run("alice", &["--json", "send", &room, "--file", path.to_str().unwrap(), "--mime", "application/x-test"])
        .success()
        .records("sent")
        .remove(0);
    assert_eq!(sent["encrypted"], true, "{sent}");
    assert!(sent["mxc"].as_str().unwrap().starts_with("mxc://"), "{sent}");
    assert!(sent["session_id"].is_string() && sent["message_index"].is_u64(), "{sent}");
    // nio decrypts the message and the file, with its own code.
    let event = sent["event_id"].as_str().unwrap();
    let got = nio.run(&env, &["download-file", &room, event]).success().records("file").remove(0);
    assert_eq!(got["sha256"], sha256(&bytes), "{got}");
    assert_eq!(got["name"], "data.bin");
    assert_eq!(got["mimetype"], "application/x-test");

    // ratchet's own record of it, as another member reads it.
    let messages = env.run("alice", &["--json", "messages", &room]).success().records("message");
    let file = messages.iter().find(|m| m["event_id"] == event).expect("the file's message")["file"].clone();
    assert_eq!(file["encrypted"], true);
    assert_eq!(file["size"], 70_000);
    assert_eq!(file["url"], sent["mxc"]);
    let shown = env.run("alice", &["messages", &room]).success().stdout;
    assert!(shown.contains("[file] data.bin (70000 bytes, application/x-test)"), "{shown}");
    assert!(file["width"].is_null() && file["height"].is_null(), "not an image: {file}");

    // An image goes as m.image with its dimensions, read from its header.
    let png = env.home().join("pixel.png");
    let mut header = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    header.extend(640u32.to_be_bytes());
    header.extend(480u32.to_be_bytes());
    header.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    std::fs::write(&png, &header).unwrap();
    let sent = env.run("alice", &["--json", "send", &room, "--file", png.to_str().unwrap()]).success();
    let event = sent.records("sent").remove(0)["event_id"].as_str().unwrap().to_owned();
    let messages = env.run("alice", &["--json", "messages", &room]).success().records("message");
    let image = messages.iter().find(|m| m["event_id"] == event.as_str()).expect("the image's message").clone();
    assert_eq!((image["msgtype"].as_str(), image["file"]["mimetype"].as_str()), (Some("m.image"), Some("image/png")));
    assert_eq!((image["file"]["width"].as_u64(), image["file"]["height"].as_u64()), (Some(640), Some(480)), "{image}");
    let got = nio.run(&env, &["download-file", &room, &event]).success().records("file").remove(0);
    assert_eq!(got["sha256"], sha256(&header), "{got}");
}

#[test]
fn a_file_nio_sends_is_downloaded_decrypted_and_checked() {
    let env = TestEnv::new();
    let (_alice, _nina, nio, room) = env.alice_and_nio();
    let bytes = payload(5_000);
    let path = env.home().join("from-nio.bin");
    std::fs::write(&path, &bytes).unwrap();
    let sent = nio.run(&env, &["send-file", &room, path.to_str().unwrap(), "application/octet-stream"]).success();
    let event = sent.records("sent")[0]["event_id"].as_str().unwrap().to_owned();
    let out = env.home().join("got.bin");
    let got = env
        .run("alice", &["--json", "download", &room, &event, "-o", out.to_str().unwrap()])
        .success()
        .records("downloaded")
        .remove(0);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert_eq!(got["sha256"], sha256(&bytes));
    assert_eq!(got["encrypted"], true);
    // Not replaced without --force; replaced with it.
    std::fs::write(&out, b"mine").unwrap();
    let refused = env.run("alice", &["download", &room, &event, "-o", out.to_str().unwrap()]).code(2);
    assert!(refused.stderr.contains("exists") && refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    env.run("alice", &["download", &room, &event, "-o", out.to_str().unwrap(), "--force"]).success();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // To stdout: the bytes alone (binary: read raw, not through the
    // harness's text capture).
    let piped = env.command("alice", &["download", &room, &event, "-o", "-"]).output().unwrap();
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert_eq!(piped.stdout, bytes);
}

/// The stored (encrypted) file changed on the server: its SHA-256 is not
/// the one the message states, and the download is refused, nothing
/// written.
#[test]
fn a_file_changed_on_the_server_is_refused() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let path = env.home().join("doc.txt");
    std::fs::write(&path, b"the original text of the document").unwrap();
    let sent = env.run("alice", &["--json", "send", &room, "--file", path.to_str().unwrap()]).success();
    let sent = sent.records("sent").remove(0);
    let media_id = sent["mxc"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    // Synapse keeps local media under local_content/AA/BB/REST.
    let stored =
        synapse().dir.join("media_store/local_content").join(&media_id[..2]).join(&media_id[2..4]).join(&media_id[4..]);
    let mut bytes = std::fs::read(&stored).unwrap_or_else(|e| panic!("{}: {e}", stored.display()));
    bytes[3] ^= 0x40;
    std::fs::write(&stored, &bytes).unwrap();
    let out = env.home().join("doc-copy.txt");
    let run = env.run("bob", &["download", &room, sent["event_id"].as_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("SHA-256"), "{}", run.stderr);
    assert!(!out.exists(), "nothing written");
}

#[test]
fn bad_files_are_refused_with_nothing_sent() {
    let (env, _alice, _bob, room) = TestEnv::alice_and_bob(&[]);
    let before = env.run("bob", &["--json", "messages", &room]).success().records("message").len();
    let missing = env.run("alice", &["send", &room, "--file", "/nonexistent/file.bin"]).code(2);
    assert!(missing.stderr.contains("no such file"), "{}", missing.stderr);
    let dir = env.run("alice", &["send", &room, "--file", env.home().to_str().unwrap()]).code(2);
    assert!(dir.stderr.contains("is a directory"), "{}", dir.stderr);
    let nameless = env.run_stdin("alice", &["send", &room, "--file", "-"], b"data").code(2);
    assert!(nameless.stderr.contains("--name"), "{}", nameless.stderr);
    // One good file and one missing: nothing at all is sent.
    let good = env.home().join("good.txt");
    std::fs::write(&good, b"fine").unwrap();
    env.run("alice", &["send", &room, "--file", good.to_str().unwrap(), "--file", "/nonexistent"]).code(2);
    let after = env.run("bob", &["--json", "messages", &room]).success().records("message").len();
    assert_eq!(before, after, "nothing was sent");
    // A message without a file.
    let text = env.run("alice", &["--json", "send", &room, "just text"]).success().records("sent").remove(0);
    let run = env.run("bob", &["download", &room, text["event_id"].as_str().unwrap()]).code(2);
    assert!(run.stderr.contains("not a message with a file"), "{}", run.stderr);
    // From stdin, with a name, read by bob into a file named by the message.
    let sent = env
        .run_stdin("alice", &["--json", "send", &room, "--file", "-", "--name", "notes.md"], b"# notes\n")
        .success()
        .records("sent")
        .remove(0);
    let cwd_run = {
        let mut cmd = env.command("bob", &["--json", "download", &room, sent["event_id"].as_str().unwrap()]);
        cmd.current_dir(env.home());
        env.run_with(cmd, None).success()
    };
    let got: Value = cwd_run.records("downloaded").remove(0);
    assert_eq!(got["name"], "notes.md");
    assert_eq!(got["mimetype"], "text/markdown");
    assert_eq!(std::fs::read(env.home().join("notes.md")).unwrap(), b"# notes\n");
}

/// Element's crypto stack (the js-sdk peer, in its default exclude-insecure
/// mode) reads a file ratchet sent, and ratchet one it sent: the message
/// through each side's Megolm, the file through the spec's attachment
/// encryption (Node's own AES-CTR on the js side).
#[test]
fn element_s_stack_and_ratchet_exchange_files_both_ways() {
    exchange_files_with_element("exclude-insecure");
}

/// The same in the legacy "all devices" mode on both sides, with devices
/// nobody cross-signed (Element's other device-isolation mode).
#[test]
fn element_s_stack_and_ratchet_exchange_files_in_all_devices_mode() {
    exchange_files_with_element("all-devices");
}

fn exchange_files_with_element(isolation: &str) {
    let env = TestEnv::new();
    let (alice, jo) = (crate::common::register("alice"), crate::common::register("jo"));
    let all = isolation == "all-devices";
    if all {
        let run = env.login_with(
            "alice",
            &alice,
            &synapse().url,
            &["--json", "--isolation", "all-devices"],
            &["--no-bootstrap"],
        );
        run.success();
    } else {
        env.login("alice", &alice);
    }
    let mut js = crate::common::js_peer::JsPeer::login(&jo, isolation, !all);
    let room = env.encrypted_room("alice", &[], &["--invite", &js.user_id]);
    js.join(&room);

    let bytes = payload(30_000);
    let path = env.home().join("to-element.bin");
    std::fs::write(&path, &bytes).unwrap();
    let sent = env.run("alice", &["--json", "send", &room, "--file", path.to_str().unwrap()]).success();
    let event = sent.records("sent")[0]["event_id"].as_str().unwrap().to_owned();
    let got = js.call(serde_json::json!({"cmd": "download_file", "room_id": room, "event_id": event}));
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["sha256"], sha256(&bytes), "{got}");
    assert_eq!(got["name"], "to-element.bin");

    let theirs = payload(12_345).into_iter().rev().collect::<Vec<u8>>();
    let data: String = theirs.iter().map(|b| format!("{b:02x}")).collect();
    let sent = js.call(serde_json::json!({
        "cmd": "send_file", "room_id": room, "name": "from-element.dat", "data_hex": data, "mimetype": "application/x-element"
    }));
    assert_eq!(sent["ok"], true, "{sent}");
    let out = env.home().join("from-element.dat");
    let got = env
        .run("alice", &["--json", "download", &room, sent["event_id"].as_str().unwrap(), "-o", out.to_str().unwrap()])
        .success()
        .records("downloaded")
        .remove(0);
    assert_eq!(std::fs::read(&out).unwrap(), theirs);
    assert_eq!(got["mimetype"], "application/x-element");
}

/// A file over the server's upload limit (`/media/config`), and a file
/// message this device cannot decrypt: each a clear error, nothing sent or
/// written; the hint of the second, pasted, explains it.
#[test]
fn a_file_over_the_upload_limit_and_one_that_cannot_be_decrypted() {
    let server = crate::common::Synapse::private_with(&[("RATCHET_SYNAPSE_MAX_UPLOAD", "64K")]);
    let env = TestEnv::new();
    let alice = crate::common::register_at(&server.url, "alice");
    let bob = crate::common::register_at(&server.url, "bob");
    env.login_at("alice", &alice, &server.url);
    env.login_at("bob", &bob, &server.url);
    let room = env.encrypted_room("alice", &[("bob", &bob)], &[]);

    let big = env.home().join("big.bin");
    std::fs::write(&big, payload(100 * 1024)).unwrap();
    let small = env.home().join("small.bin");
    std::fs::write(&small, payload(1024)).unwrap();
    // A bad argument for this server (exit 2), found before the first of
    // the files goes: none is sent.
    let run =
        env.run("alice", &["send", &room, "--file", small.to_str().unwrap(), "--file", big.to_str().unwrap()]).code(2);
    assert!(
        run.stderr.contains("big.bin is 102400 bytes, over the homeserver's upload limit of 65536"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was sent"), "{}", run.stderr);
    assert!(env.run("bob", &["--json", "messages", &room]).success().records("message").is_empty());

    // Under the limit it goes; bob then loses its key on purpose.
    let sent = env.run("alice", &["--json", "send", &room, "--file", small.to_str().unwrap()]).success();
    let sent = sent.records("sent").remove(0);
    let (event, session) = (sent["event_id"].as_str().unwrap(), sent["session_id"].as_str().unwrap());
    env.run("bob", &["messages", &room]).success();
    env.run("bob", &["debug", "forget-room-key", &room, session, "--yes"]).success();
    let out = env.home().join("small-copy.bin");
    let run = env.run("bob", &["--json", "download", &room, event, "-o", out.to_str().unwrap()]).code(1);
    let error: Value = serde_json::from_str(run.stderr.lines().last().unwrap()).unwrap();
    assert!(error["message"].as_str().unwrap().contains("cannot be decrypted here"), "{error}");
    assert!(!out.exists(), "nothing written");
    let hint = error["hints"][0].as_str().unwrap();
    let pasted = env.paste(hint.split('`').nth(1).expect("a command in the hint")).code(3);
    assert!(pasted.stdout.contains(event), "{}", pasted.stdout);
}
