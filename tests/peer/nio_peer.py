#!/usr/bin/env python3
"""An independent Matrix client for ratchet's tests, built on matrix-nio.

ratchet is built on matrix-sdk; a message it encrypted only counts as working
when a client that shares none of that code decrypts it. This peer logs in,
joins, sends and reads with nio's own Olm/Megolm handling, and reports each
encrypted event's Megolm session id and message index, the index read from the
ciphertext bytes by hand (not by any library), so the tests compare ratchet's
claims against an outside view.

    nio_peer.py STATE_DIR login HOMESERVER USER PASSWORD
    nio_peer.py STATE_DIR join ROOM_ID
    nio_peer.py STATE_DIR messages ROOM_ID [LIMIT]
    nio_peer.py STATE_DIR send ROOM_ID TEXT...
    nio_peer.py STATE_DIR send-late ROOM_ID TEXT SECONDS   (the key follows later)
    nio_peer.py STATE_DIR olm-dummy-oldest USER DEVICE      (m.dummy over the oldest Olm session)
    nio_peer.py STATE_DIR olm-forget-newest USER DEVICE     (lose the newest Olm session, as an old backup would)
    nio_peer.py STATE_DIR send-file ROOM_ID PATH MIME        (an encrypted attachment, nio's own encryption)
    nio_peer.py STATE_DIR download-file ROOM_ID EVENT_ID     (fetch and decrypt a message's file)

Output: JSON lines on stdout (types: login, joined, message, utd, sent, and
withheld for each m.room_key.withheld a sync brought).
Exit 0 on success, 1 on failure, 3 when some events could not be decrypted.
"""

import asyncio
import base64
import json
import os
import sys
from urllib.parse import quote

import aiohttp
from uuid import uuid4

from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    JoinError,
    LoginError,
    MegolmEvent,
    RoomSendError,
    RoomSendResponse,
    ShareGroupSessionResponse,
    SyncError,
)


def out(record):
    print(json.dumps(record), flush=True)


def fail(message):
    print(f"nio_peer: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def megolm_index(ciphertext):
    """The message index of a Megolm message (version byte 3, then protobuf
    field 1 as a varint), parsed from the bytes directly."""
    raw = base64.b64decode(ciphertext + "=" * (-len(ciphertext) % 4))
    if len(raw) < 3 or raw[0] != 3 or raw[1] != 0x08:
        return None
    value, shift = 0, 0
    for byte in raw[2:12]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    return None


def make_client(state_dir, creds=None):
    config = AsyncClientConfig(store_sync_tokens=True, encryption_enabled=True)
    store = os.path.join(state_dir, "store")
    os.makedirs(store, exist_ok=True)
    if creds is None:
        return AsyncClient("http://invalid", store_path=store, config=config)
    client = AsyncClient(
        creds["homeserver"],
        creds["user_id"],
        device_id=creds["device_id"],
        store_path=store,
        config=config,
    )
    client.restore_login(creds["user_id"], creds["device_id"], creds["access_token"])
    return client


def load_creds(state_dir):
    with open(os.path.join(state_dir, "creds.json")) as f:
        return json.load(f)


async def sync(client):
    # nio keeps the sync token but not the room list between runs: full
    # state rebuilds the rooms each time.
    response = await client.sync(timeout=0, full_state=True)
    if isinstance(response, SyncError):
        fail(f"sync failed: {response.message}")
    # nio has no class for m.room_key.withheld: report those (what an
    # "exclude insecure devices" sender sends instead of a key) as records.
    for event in response.to_device_events:
        source = getattr(event, "source", {}) or {}
        if source.get("type") == "m.room_key.withheld":
            content = source.get("content", {})
            out({"type": "withheld", "sender": source.get("sender"), "code": content.get("code"),
                 "session_id": content.get("session_id"), "room_id": content.get("room_id")})
    # Keys for new devices, sessions for new recipients.
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    return response


async def cmd_login(state_dir, homeserver, user, password):
    os.makedirs(state_dir, exist_ok=True)
    config = AsyncClientConfig(store_sync_tokens=True, encryption_enabled=True)
    store = os.path.join(state_dir, "store")
    os.makedirs(store, exist_ok=True)
    client = AsyncClient(homeserver, user, store_path=store, config=config)
    response = await client.login(password, device_name="nio-peer")
    if isinstance(response, LoginError):
        fail(f"login failed: {response.message}")
    creds = {
        "homeserver": homeserver,
        "user_id": response.user_id,
        "device_id": response.device_id,
        "access_token": response.access_token,
    }
    with open(os.path.join(state_dir, "creds.json"), "w") as f:
        json.dump(creds, f)
    await client.keys_upload()
    await sync(client)
    out({"type": "login", "user_id": response.user_id, "device_id": response.device_id})
    await client.close()


async def cmd_join(client, room_id):
    await sync(client)
    response = await client.join(room_id)
    if isinstance(response, JoinError):
        fail(f"join failed: {response.message}")
    await sync(client)
    out({"type": "joined", "room_id": room_id})


async def cmd_messages(client, room_id, limit):
    # Two syncs: the first brings to-device room keys, the second settles.
    await sync(client)
    await sync(client)
    # Raw events, so the ciphertext is still there to read the index from
    # (nio's room_messages hands back events it has already decrypted).
    url = (
        f"{client.homeserver}/_matrix/client/v3/rooms/{quote(room_id, safe='')}"
        f"/messages?dir=b&limit={limit}"
    )
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as resp:
            if resp.status != 200:
                fail(f"messages failed: HTTP {resp.status}")
            chunk = (await resp.json())["chunk"]
    utd = 0
    for source in reversed(chunk):
        if source.get("type") != "m.room.encrypted":
            continue
        source.setdefault("room_id", room_id)
        content = source.get("content", {})
        record = {
            "event_id": source.get("event_id"),
            "sender": source.get("sender"),
            "session_id": content.get("session_id"),
            "message_index": megolm_index(content.get("ciphertext", "")),
        }
        event = MegolmEvent.from_dict(source)
        try:
            decrypted = client.decrypt_event(event)
        except Exception as e:  # nio raises EncryptionError and friends
            utd += 1
            out({"type": "utd", "reason": str(e), **record})
            continue
        body = getattr(decrypted, "body", None)
        out({"type": "message", "body": body, **record})
    return 3 if utd else 0


async def cmd_send(client, room_id, texts):
    await sync(client)
    await client.joined_members(room_id)
    for text in texts:
        response = await client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": text},
            ignore_unverified_devices=True,
        )
        if isinstance(response, RoomSendError):
            fail(f"send failed: {response.message}")
        out({"type": "sent", "room_id": room_id, "event_id": response.event_id, "body": text})


async def cmd_send_late(client, room_id, text, delay):
    """Sends TEXT now and its room key DELAY seconds later: a message that
    arrives before its key, as on a slow or reordered link."""
    await sync(client)
    await client.joined_members(room_id)
    missing = client.get_missing_sessions(room_id)
    if missing:
        await client.keys_claim(missing)
    users = list(client.rooms[room_id].users)
    # The key payloads are made now, at index 0, before the message moves
    # the session on; they are only sent after the delay.
    payloads = list(client.olm.share_group_session_parallel(room_id, users, ignore_unverified_devices=True))
    client.olm.outbound_group_sessions[room_id].shared = True
    content = client.olm.group_encrypt(
        room_id, {"type": "m.room.message", "content": {"msgtype": "m.text", "body": text}}
    )
    method, path, data = Api.room_send(client.access_token, room_id, "m.room.encrypted", content, str(uuid4()))
    response = await client._send(RoomSendResponse, method, path, data, response_data=(room_id,))
    if isinstance(response, RoomSendError):
        fail(f"send failed: {response.message}")
    out({"type": "sent", "room_id": room_id, "event_id": response.event_id, "body": text,
         "session_id": content["session_id"]})
    await asyncio.sleep(delay)
    for sharing_with, to_device_dict in payloads:
        method, path, data = Api.to_device(client.access_token, "m.room.encrypted", to_device_dict, str(uuid4()))
        await client._send(ShareGroupSessionResponse, method, path, data, response_data=(room_id, sharing_with))
    out({"type": "key_sent", "room_id": room_id, "session_id": content["session_id"]})


async def cmd_olm_dummy_oldest(client, user, device_id):
    """Sends an Olm-encrypted m.dummy to one device over the *oldest* Olm
    session nio holds with it, whatever nio would pick: a peer that keeps
    using an earlier session, as R7 allows the other side to choose."""
    await sync(client)
    device = client.device_store[user][device_id]
    sessions = list(client.olm.session_store[device.curve25519])
    if not sessions:
        fail(f"no Olm session with {user} {device_id}")
    oldest = min(sessions, key=lambda s: s.creation_time)
    content = client.olm._olm_encrypt(oldest, device, "m.dummy", {})
    body = {"messages": {user: {device_id: content}}}
    method, path, data = Api.to_device(client.access_token, "m.room.encrypted", body, str(uuid4()))
    response = await client.send(method, path, data, headers={"Content-Type": "application/json"})
    if response.status != 200:
        fail(f"to-device failed: {response.status}")
    out({"type": "olm_dummy", "session_id": oldest.id, "sessions": len(sessions)})


async def cmd_olm_forget_newest(client, user, device_id):
    """Loses the *newest* Olm session nio holds with one device, from memory
    and from its store, as a restore from an older backup would: the peer
    still holds its older sessions."""
    from nio.store.models import OlmSessions

    await sync(client)
    device = client.device_store[user][device_id]
    sessions = list(client.olm.session_store[device.curve25519])
    if len(sessions) < 2:
        fail(f"fewer than two Olm sessions with {user} {device_id}")
    newest = max(sessions, key=lambda s: s.creation_time)
    client.olm.session_store[device.curve25519].remove(newest)
    with client.store.database.bind_ctx([OlmSessions]):
        OlmSessions.delete().where(OlmSessions.session_id == newest.id).execute()
    out({"type": "olm_forgot", "session_id": newest.id, "left": len(sessions) - 1})


async def cmd_send_file(client, room_id, path, mime):
    """Sends the file at PATH encrypted as the spec's attachments are, with
    nio's own AES-CTR encryption and upload (none of matrix-sdk's code)."""
    import io

    await sync(client)
    await client.joined_members(room_id)
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    response, keys = await client.upload(
        lambda *_: io.BytesIO(data), content_type=mime, filename=name, encrypt=True, filesize=len(data)
    )
    if not hasattr(response, "content_uri"):
        fail(f"upload failed: {response}")
    content = {
        "msgtype": "m.file",
        "body": name,
        "filename": name,
        "info": {"size": len(data), "mimetype": mime},
        "file": {"url": response.content_uri, **keys},
    }
    sent = await client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
    if isinstance(sent, RoomSendError):
        fail(f"send failed: {sent.message}")
    out({"type": "sent", "room_id": room_id, "event_id": sent.event_id, "mxc": response.content_uri})


async def cmd_download_file(client, room_id, event_id):
    """Fetches a message, decrypts it, downloads its file (authenticated
    media) and decrypts that with nio's own code, checking the stated hash."""
    import hashlib

    from nio.crypto.attachments import decrypt_attachment

    await sync(client)
    await sync(client)
    headers = {"Authorization": f"Bearer {client.access_token}"}
    url = f"{client.homeserver}/_matrix/client/v3/rooms/{quote(room_id, safe='')}/event/{quote(event_id, safe='')}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as resp:
            if resp.status != 200:
                fail(f"event failed: HTTP {resp.status}")
            source = await resp.json()
        source.setdefault("room_id", room_id)
        decrypted = client.decrypt_event(MegolmEvent.from_dict(source))
        content = decrypted.source["content"]
        file = content["file"]
        server, media_id = file["url"][len("mxc://"):].split("/", 1)
        media = f"{client.homeserver}/_matrix/client/v1/media/download/{server}/{media_id}"
        async with http.get(media, headers=headers) as resp:
            if resp.status != 200:
                fail(f"download failed: HTTP {resp.status}")
            ciphertext = await resp.read()
    data = decrypt_attachment(ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
    out({
        "type": "file",
        "name": content.get("filename") or content.get("body"),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "mimetype": content.get("info", {}).get("mimetype"),
    })


async def main(argv):
    if len(argv) < 3:
        fail(__doc__)
    state_dir, command, args = argv[1], argv[2], argv[3:]
    if command == "login":
        await cmd_login(state_dir, *args)
        return 0
    client = make_client(state_dir, load_creds(state_dir))
    try:
        client.load_store()
        if command == "join":
            await cmd_join(client, args[0])
            return 0
        if command == "messages":
            limit = int(args[1]) if len(args) > 1 else 50
            return await cmd_messages(client, args[0], limit)
        if command == "send":
            await cmd_send(client, args[0], args[1:])
            return 0
        if command == "olm-dummy-oldest":
            await cmd_olm_dummy_oldest(client, args[0], args[1])
            return 0
        if command == "olm-forget-newest":
            await cmd_olm_forget_newest(client, args[0], args[1])
            return 0
        if command == "send-file":
            await cmd_send_file(client, args[0], args[1], args[2])
            return 0
        if command == "download-file":
            await cmd_download_file(client, args[0], args[1])
            return 0
        if command == "send-late":
            await cmd_send_late(client, args[0], args[1], float(args[2]))
            return 0
        fail(f"unknown command {command}")
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
