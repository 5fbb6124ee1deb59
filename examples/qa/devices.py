"""Users whose one device has real Olm identity keys and one-time keys but no
client behind it: the crowd of a batching scenario, made in seconds.

  python devices.py HOMESERVER ROOM_ID COUNT PREFIX

Registers COUNT users PREFIX-<random>-<n>, logs each in, uploads a device
with signed keys (ed25519, curve25519, five signed one-time keys) and joins
ROOM_ID (a public room). Prints one JSON line per user: user_id, device_id.
Runs on the Synapse venv's Python (signedjson and PyNaCl come with it).
"""

import base64
import json
import secrets
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import nacl.public
import signedjson.key
import signedjson.sign

hs, room, count, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
run = secrets.token_hex(3)


def b64(raw):
    return base64.b64encode(raw).decode().rstrip("=")


def call(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(hs + path, json.dumps(body).encode() if body is not None else None,
                                 method=method, headers=headers)
    return json.load(urllib.request.urlopen(req))


def one(n):
    name = f"{prefix}-{run}-{n}"
    login = call("POST", "/_matrix/client/v3/register",
                 {"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
    user, device, token = login["user_id"], login["device_id"], login["access_token"]
    signing = signedjson.key.generate_signing_key(device)
    curve = nacl.public.PrivateKey.generate()
    keys = {
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device}": b64(bytes(curve.public_key)),
            f"ed25519:{device}": signedjson.key.encode_verify_key_base64(signing.verify_key),
        },
    }
    signedjson.sign.sign_json(keys, user, signing)
    otks = {}
    for i in range(5):
        otk = {"key": b64(bytes(nacl.public.PrivateKey.generate().public_key))}
        signedjson.sign.sign_json(otk, user, signing)
        otks[f"signed_curve25519:AAAA{i}"] = otk
    call("POST", "/_matrix/client/v3/keys/upload", {"device_keys": keys, "one_time_keys": otks}, token)
    call("POST", f"/_matrix/client/v3/join/{urllib.request.quote(room, safe='')}", {}, token)
    return {"user_id": user, "device_id": device}


with ThreadPoolExecutor(8) as pool:
    for made in pool.map(one, range(count)):
        print(json.dumps(made))
