// A Matrix client on Element's crypto stack, driven by ratchet's tests.
//
// matrix-js-sdk 37.5.0 with its Rust crypto (@matrix-org/matrix-sdk-crypto-wasm),
// the code Element Web runs, kept in memory (initRustCrypto with
// useIndexedDB: false). It is one long-lived process per device: the test
// harness (tests/common/js_peer.rs) writes one JSON command per line on
// stdin and reads one JSON answer per line on stdout. js-sdk's own logs go
// to stderr.
//
// The same file runs matrix-js-sdk 43.0.0 (tests/peer/js-next, copied there
// by scripts/setup-js-peer.sh), whose invite shares the room's history
// (MSC4268); it wants Promise.withResolvers (Node 22), added below.
//
// Commands: login, join, send, messages, create_room, invite, device,
// identity, verify_request, verify_accept, verify_wait, setup_recovery,
// backup_now, restore_backup, delete_backup, reset_backup, send_file,
// download_file, quit. Every
// answer has "ok": true and the command's fields, or "ok": false and "error".

import * as readline from "node:readline";
import * as nodeCrypto from "node:crypto";

// Node 20 lacks Promise.withResolvers, which matrix-js-sdk 43's sync needs
// (without it the sync stops after its first response).
if (!Promise.withResolvers) {
    Promise.withResolvers = function () {
        let resolve, reject;
        const promise = new Promise((a, b) => { resolve = a; reject = b; });
        return { promise, resolve, reject };
    };
}

// The SDK logs to the console: keep stdout for answers.
for (const level of ["log", "info", "debug", "warn", "trace"]) console[level] = console.error;

const sdk = await import("matrix-js-sdk");
const cryptoApi = await import("matrix-js-sdk/lib/crypto-api/index.js");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.JS_PEER_LOG || "warn");

let client = null;
let password = null;
// The secret-storage key (raw bytes) js answers getSecretStorageKey with:
// made by setup_recovery, or decoded from a recovery key by use_recovery_key.
let secretStorageKey = null;

function answer(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, ms, check) {
    const deadline = Date.now() + ms;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(100);
    }
}

function isolationMode(name) {
    if (name === "exclude-insecure") return new cryptoApi.OnlySignedDevicesIsolationMode();
    if (name === "all-devices") return new cryptoApi.AllDevicesIsolationMode(false);
    throw new Error(`unknown isolation mode ${name}`);
}

async function login({ homeserver, user, password: pw, isolation, bootstrap }) {
    password = pw;
    const bare = sdk.createClient({ baseUrl: homeserver });
    const session = await bare.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password: pw,
        initial_device_display_name: "js-peer",
    });
    client = sdk.createClient({
        baseUrl: homeserver,
        userId: session.user_id,
        deviceId: session.device_id,
        accessToken: session.access_token,
        cryptoCallbacks: {
            getSecretStorageKey: async ({ keys }) => {
                if (!secretStorageKey) return null;
                // The default key, as Element asks for it: a secret stored
                // under an old key too (after a key change) is read with
                // the current one.
                const current = await client.secretStorage.getDefaultKeyId();
                return [current && keys[current] ? current : Object.keys(keys)[0], secretStorageKey];
            },
            cacheSecretStorageKey: () => {},
        },
    });
    await client.initRustCrypto({ useIndexedDB: false });
    const crypto = client.getCrypto();
    crypto.globalBlacklistUnverifiedDevices = false;
    crypto.setDeviceIsolationMode(isolationMode(isolation || "exclude-insecure"));
    const prepared = new Promise((resolve) => {
        client.on(sdk.ClientEvent.Sync, (state) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
        });
    });
    await client.startClient({ initialSyncLimit: 50 });
    await prepared;
    if (bootstrap) await cross_sign();
    const status = await crypto.getCrossSigningStatus();
    return { user_id: session.user_id, device_id: session.device_id, cross_signing_ready: await crypto.isCrossSigningReady(), status };
}

// Makes this account's cross-signing identity and signs this device with
// it (at login with `bootstrap`, or later: a device its owner verifies
// after the fact).
async function cross_sign() {
    await client.getCrypto().bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: client.getUserId() },
                password,
            });
        },
    });
    return { cross_signing_ready: await client.getCrypto().isCrossSigningReady() };
}

// With `wait_invite`, first waits for the invite to reach this client (as a
// person accepts an invite they see): the history shared with it (MSC4268)
// comes before the invite, and matrix-js-sdk takes it at the join.
async function join({ room_id, wait_invite = false }) {
    if (wait_invite) {
        await until("the invite", 20000, () => client.getRoom(room_id)?.getMyMembership() === "invite");
    }
    await client.joinRoom(room_id);
    await until("the room", 20000, () => client.getRoom(room_id)?.getMyMembership() === "join");
    return { room_id };
}

async function send({ room_id, text }) {
    await until("the room", 20000, () => client.getRoom(room_id));
    const { event_id } = await client.sendTextMessage(room_id, text);
    return { event_id };
}

// An encrypted private room made by this client, as Element makes one.
async function create_room({ invite = [] }) {
    const { room_id } = await client.createRoom({
        preset: "private_chat",
        invite,
        initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    await until("the room", 20000, () => client.getRoom(room_id));
    await until("its encryption", 20000, () => client.getCrypto().isEncryptionEnabledInRoom(room_id));
    return { room_id };
}

// An invite as Element sends it (matrix-js-sdk 43 shares the history first).
async function invite({ room_id, user_id }) {
    await client.invite(room_id, user_id);
    return {};
}

function view(ev) {
    const failure = ev.isDecryptionFailure();
    return {
        event_id: ev.getId(),
        sender: ev.getSender(),
        encrypted: ev.isEncrypted(),
        body: failure ? null : (ev.getContent()?.body ?? null),
        utd: failure ? (ev.decryptionFailureReason ?? "unknown") : null,
    };
}

// The room's messages; with `wait_for` (event ids), waits up to `timeout_ms`
// for each to arrive and decrypt (keys may come later than events).
async function messages({ room_id, wait_for = [], timeout_ms = 20000 }) {
    const room = await until("the room", 20000, () => client.getRoom(room_id));
    const collect = () => room.getLiveTimeline().getEvents().filter((e) => e.getWireType() === "m.room.encrypted" || e.getType() === "m.room.message");
    const settled = () => {
        const seen = new Map(collect().map((e) => [e.getId(), e]));
        return wait_for.every((id) => seen.has(id) && !seen.get(id).isBeingDecrypted() && !seen.get(id).isDecryptionFailure());
    };
    const deadline = Date.now() + timeout_ms;
    while (!settled() && Date.now() < deadline) {
        for (const e of collect()) if (e.isDecryptionFailure()) await client.decryptEventIfNeeded(e, { isRetry: true });
        await sleep(200);
    }
    return { messages: collect().map(view) };
}

async function device({ user_id, device_id }) {
    const crypto = client.getCrypto();
    await crypto.getUserDeviceInfo([user_id], true);
    const status = await crypto.getDeviceVerificationStatus(user_id, device_id);
    return {
        known: status !== null,
        signed_by_owner: status?.signedByOwner ?? false,
        cross_signing_verified: status?.crossSigningVerified ?? false,
        locally_verified: status?.localVerified ?? false,
    };
}

async function identity() {
    const crypto = client.getCrypto();
    const own = await crypto.getDeviceVerificationStatus(client.getUserId(), client.getDeviceId());
    return { cross_signing_ready: await crypto.isCrossSigningReady(), own_device_signed_by_owner: own?.signedByOwner ?? false };
}

// SAS verification. The flow runs in the background (the client keeps
// syncing); `verify_wait` returns its end: the emoji js saw (symbols, to
// compare with ratchet's) and whether it completed. `answer` decides what
// js says when the emoji show: "yes" confirms, "no" is a mismatch.
let verification = null;

async function runVerification(request, weStarted, answer) {
    await until("the other side to accept", 60000, () =>
        request.phase === cryptoApi.VerificationPhase.Ready || request.phase === cryptoApi.VerificationPhase.Started ||
        request.phase === cryptoApi.VerificationPhase.Cancelled);
    let verifier;
    if (weStarted) {
        verifier = await request.startVerification("m.sas.v1");
    } else {
        verifier = await until("the other side to start SAS", 60000, () => request.verifier);
    }
    let emoji = null;
    verifier.on(cryptoApi.VerifierEvent.ShowSas, (sas) => {
        emoji = (sas.sas.emoji || []).map(([symbol]) => symbol);
        if (answer === "yes") sas.confirm();
        else sas.mismatch();
    });
    try {
        await verifier.verify();
        return { done: true, emoji };
    } catch (e) {
        return { done: false, emoji, error: String(e) };
    }
}

async function verify_request({ user_id, device_id, answer = "yes" }) {
    const crypto = client.getCrypto();
    await crypto.getUserDeviceInfo([user_id], true);
    const request = await crypto.requestDeviceVerification(user_id, device_id);
    verification = runVerification(request, true, answer);
    return {};
}

async function verify_accept({ answer = "yes" }) {
    verification = new Promise((resolve) => {
        client.once(cryptoApi.CryptoEvent.VerificationRequestReceived, async (request) => {
            await request.accept();
            resolve(await runVerification(request, false, answer));
        });
    });
    return {};
}

async function verify_wait() {
    if (!verification) throw new Error("no verification under way");
    const result = await verification;
    verification = null;
    return result;
}

// Secret storage and key backup as Element sets them up: a new recovery
// key, cross-signing keys and a new backup (its key in secret storage).
// Returns the recovery key a person would write down.
async function setup_recovery() {
    const crypto = client.getCrypto();
    let recoveryKey = null;
    await crypto.bootstrapSecretStorage({
        createSecretStorageKey: async () => {
            const key = await crypto.createRecoveryKeyFromPassphrase();
            secretStorageKey = key.privateKey;
            recoveryKey = key.encodedPrivateKey;
            return key;
        },
        setupNewSecretStorage: true,
        setupNewKeyBackup: true,
    });
    await until("the backup", 20000, async () => await crypto.getActiveSessionBackupVersion());
    return { recovery_key: recoveryKey, backup_version: await crypto.getActiveSessionBackupVersion() };
}

// Waits until the server's backup holds at least `at_least` room keys: the
// Rust crypto uploads in the background, after a random delay of up to 10 s.
async function backup_now({ at_least = 1 }) {
    await client.getCrypto().checkKeyBackupAndEnable();
    const info = await until("the backup to catch up", 60000, async () => {
        const info = await client.http.authedRequest(sdk.Method.Get, "/room_keys/version");
        return info.count >= at_least ? info : null;
    });
    return { count: info.count, backup_version: info.version };
}

// With a recovery key (as Element: "Enter your recovery key"), loads the
// backup key from secret storage and restores every key in the backup.
async function restore_backup({ recovery_key }) {
    const crypto = client.getCrypto();
    secretStorageKey = cryptoApi.decodeRecoveryKey(recovery_key);
    // The server's backup as it is now (it may have changed since this
    // device last looked: made, deleted or replaced by another device).
    await crypto.checkKeyBackupAndEnable();
    await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
    const check = await crypto.checkKeyBackupAndEnable();
    const result = await crypto.restoreKeyBackup();
    return { imported: result.imported, total: result.total, backup_version: check?.backupInfo?.version ?? null };
}

// Element's "delete backup": the server's current backup version goes.
async function delete_backup() {
    const crypto = client.getCrypto();
    const info = await client.http.authedRequest(sdk.Method.Get, "/room_keys/version");
    await crypto.deleteKeyBackupVersion(info.version);
    return { deleted: info.version };
}

// Element's "reset backup": a new backup version with a new key (stored in
// secret storage, as Element does when it is set up).
async function reset_backup() {
    const crypto = client.getCrypto();
    await crypto.resetKeyBackup();
    const info = await client.http.authedRequest(sdk.Method.Get, "/room_keys/version");
    return { backup_version: info.version };
}

const b64 = (buf) => Buffer.from(buf).toString("base64").replace(/=+$/, "");

// A file sent encrypted as Element sends one: the spec's encrypted
// attachment (v2: AES-256-CTR, a JWK key, the SHA-256 of the ciphertext),
// with Node's own crypto, in a message Element's crypto stack encrypts.
async function send_file({ room_id, name, data_hex, mimetype = "application/octet-stream" }) {
    await until("the room", 20000, () => client.getRoom(room_id));
    const data = Buffer.from(data_hex, "hex");
    const key = nodeCrypto.randomBytes(32);
    const iv = Buffer.concat([nodeCrypto.randomBytes(8), Buffer.alloc(8)]);
    const cipher = nodeCrypto.createCipheriv("aes-256-ctr", key, iv);
    const ciphertext = Buffer.concat([cipher.update(data), cipher.final()]);
    const sha256 = nodeCrypto.createHash("sha256").update(ciphertext).digest();
    const { content_uri } = await client.uploadContent(ciphertext, { type: "application/octet-stream", includeFilename: false });
    const file = {
        url: content_uri,
        key: { kty: "oct", key_ops: ["encrypt", "decrypt"], alg: "A256CTR", k: key.toString("base64url"), ext: true },
        iv: b64(iv),
        hashes: { sha256: b64(sha256) },
        v: "v2",
    };
    const content = { msgtype: "m.file", body: name, filename: name, info: { size: data.length, mimetype }, file };
    const { event_id } = await client.sendMessage(room_id, content);
    return { event_id, mxc: content_uri };
}

// A message's file, as Element downloads one: the event decrypted by
// Element's crypto stack, the ciphertext fetched (authenticated media),
// its SHA-256 checked, then decrypted.
async function download_file({ room_id, event_id }) {
    const room = await until("the room", 20000, () => client.getRoom(room_id));
    const ev = await until("the event, decrypted", 20000, async () => {
        const e = room.findEventById(event_id);
        if (!e || e.isBeingDecrypted()) return null;
        if (e.isDecryptionFailure()) {
            await client.decryptEventIfNeeded(e, { isRetry: true });
            return null;
        }
        return e;
    });
    const content = ev.getContent();
    const file = content.file;
    const url = client.mxcUrlToHttp(file.url, undefined, undefined, undefined, false, true, true);
    const res = await fetch(url, { headers: { Authorization: `Bearer ${client.getAccessToken()}` } });
    if (!res.ok) throw new Error(`download: HTTP ${res.status}`);
    const ciphertext = Buffer.from(await res.arrayBuffer());
    const stated = file.hashes.sha256.replace(/=+$/, "");
    if (b64(nodeCrypto.createHash("sha256").update(ciphertext).digest()) !== stated) throw new Error("hash mismatch");
    const decipher = nodeCrypto.createDecipheriv("aes-256-ctr", Buffer.from(file.key.k, "base64url"), Buffer.from(file.iv, "base64"));
    const data = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    return {
        name: content.filename ?? content.body,
        size: data.length,
        mimetype: content.info?.mimetype ?? null,
        sha256: nodeCrypto.createHash("sha256").update(data).digest("hex"),
    };
}

const commands = {
    login, cross_sign, join, send, messages, create_room, invite, device, identity, verify_request, verify_accept, verify_wait,
    setup_recovery, backup_now, restore_backup, delete_backup, reset_backup, send_file, download_file,
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
    let request;
    try {
        request = JSON.parse(line);
    } catch (e) {
        answer({ ok: false, error: `not JSON: ${line}` });
        continue;
    }
    if (request.cmd === "quit") break;
    const run = commands[request.cmd];
    if (!run) {
        answer({ ok: false, error: `unknown command ${request.cmd}` });
        continue;
    }
    try {
        answer({ ok: true, ...(await run(request)) });
    } catch (e) {
        answer({ ok: false, error: String(e?.stack || e) });
    }
}
client?.stopClient();
process.exit(0);
