"""The QA fault proxy: a mitmproxy addon, run in reverse-proxy mode in front
of a homeserver (examples/qa/lib.sh `start_proxy` does it), as
complement-crypto puts mitmproxy in front of its homeservers.

Rules say which requests to break and how. They are set, listed and cleared
over HTTP on the proxy's own port, under /_faults/ (never forwarded):

  POST   /_faults/rules         a rule (JSON, below) -> {"id": N}
  GET    /_faults/rules         the rules, each with its "hits"
  DELETE /_faults/rules[/N]     clear every rule, or rule N
  POST   /_faults/release[/N]   let held requests or responses go (all, or rule N's)
  GET    /_faults/held          how many are held now, per rule
  GET    /_faults/log           every request seen: method, path, who, status, rules,
                                and for /sendToDevice how many users and devices it
                                addresses
  DELETE /_faults/log           forget the log

A rule (every field optional but the action):

  method      "PUT"                       exact match
  path        "/sendToDevice/"            regular expression searched in the path
                                          (with its query string)
  token       "syt_..."                   only requests with this access token
  who         "alice"                     a name for that token in the log
  contains    "\"membership\":\"invite\""  only responses whose body holds this text
                                          (phase "response" implied)
  skip        2                           let this many matching requests pass first
  times       1                           apply this many times, then stop (default: always)
  phase       "request" | "response"      break the request before the server sees it
                                          (default), or its response after the server
                                          has acted on it ("the network failed after
                                          the server accepted")
  action, one of:
    status    504                         answer with this status (and "body", JSON)
    delay_ms  3000                        wait, then go on
    hold      true                        wait until POST /_faults/release
    drop      true                        close the connection, no answer
    replace   [["old", "new"], ...]       rewrite the response body text (phase
                                          "response" is implied)
    spoof     {"from": "@alice:hs", "to": "@carol:hs"}
                                          in a /sync or /messages response, rewrite the
                                          `sender` of every m.room.encrypted timeline
                                          event from one user to another (phase
                                          "response" implied)
    remove    {"path": "device_lists.changed", "value": "@bob:hs"}
                                          remove a value from a JSON list in the
                                          response body (phase "response" implied)

A login answer's `well_known` is rewritten to name the proxy, so clients
stay behind it. Access tokens are never logged: the log names a request by its rule's "who",
or "?" for a token no rule named.
"""

import asyncio
import itertools
import json
import re

from mitmproxy import http

CONTROL = "/_faults/"


class Rule:
    ids = itertools.count(1)

    def __init__(self, spec):
        self.id = next(Rule.ids)
        self.spec = spec
        self.method = spec.get("method")
        self.path = re.compile(spec["path"]) if spec.get("path") else None
        self.token = spec.get("token")
        self.contains = spec.get("contains")
        self.skip = int(spec.get("skip", 0))
        self.times = spec.get("times")
        self.seen = 0
        self.hits = 0
        self.held = []
        actions = [a for a in ("status", "delay_ms", "hold", "drop", "replace", "remove", "spoof") if a in spec]
        if len(actions) != 1:
            raise ValueError(f"a rule needs exactly one action, got {actions or 'none'}")
        self.action = actions[0]
        implied = self.action in ("replace", "remove", "spoof") or "contains" in spec
        self.phase = "response" if implied else spec.get("phase", "request")
        if self.phase not in ("request", "response"):
            raise ValueError(f"phase must be request or response, not {self.phase!r}")

    def matches(self, flow, phase):
        if phase != self.phase:
            return False
        req = flow.request
        if self.method and req.method != self.method:
            return False
        if self.path and not self.path.search(req.path):
            return False
        if self.token and token_of(req) != self.token:
            return False
        if self.contains and (flow.response is None or self.contains not in flow.response.get_text()):
            return False
        if self.times is not None and self.hits >= int(self.times):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.hits += 1
        return True

    def describe(self):
        d = {k: v for k, v in self.spec.items() if k != "token"}
        d.update(id=self.id, hits=self.hits, held=len(self.held))
        return d


def token_of(req):
    auth = req.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return req.query.get("access_token")


def json_response(status, body):
    return http.Response.make(status, json.dumps(body), {"Content-Type": "application/json"})


def remove_value(doc, path, value):
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    items = node.get(keys[-1]) if isinstance(node, dict) else None
    if isinstance(items, list) and value in items:
        items.remove(value)
        return True
    return False


class Faults:
    def __init__(self):
        self.rules = []
        self.names = {}
        self.log = []

    # --- the control endpoint -------------------------------------------
    def control(self, flow):
        try:
            return self.controlled(flow)
        except (ValueError, KeyError, TypeError, AttributeError, re.error) as e:
            return json_response(400, {"error": f"{type(e).__name__}: {e}"})

    def controlled(self, flow):
        req = flow.request
        parts = req.path.split("?")[0][len(CONTROL):].strip("/").split("/")
        what, arg = parts[0], (int(parts[1]) if len(parts) > 1 and parts[1] else None)
        if what == "rules" and req.method == "POST":
            rule = Rule(json.loads(req.get_text() or "{}"))
            if rule.token and rule.spec.get("who"):
                self.names[rule.token] = rule.spec["who"]
            self.rules.append(rule)
            return json_response(200, {"id": rule.id})
        if what == "rules" and req.method == "GET":
            return json_response(200, [r.describe() for r in self.rules])
        if what == "rules" and req.method == "DELETE":
            gone = [r for r in self.rules if arg is None or r.id == arg]
            for r in gone:
                self.release(r)
            self.rules = [r for r in self.rules if r not in gone]
            return json_response(200, {"cleared": len(gone)})
        if what == "release" and req.method == "POST":
            n = sum(self.release(r) for r in self.rules if arg is None or r.id == arg)
            return json_response(200, {"released": n})
        if what == "held":
            return json_response(200, {str(r.id): len(r.held) for r in self.rules if r.held})
        if what == "log" and req.method == "GET":
            return json_response(200, self.log)
        if what == "log" and req.method == "DELETE":
            self.log = []
            return json_response(200, {})
        if what == "name" and req.method == "POST":
            body = json.loads(req.get_text() or "{}")
            self.names[body["token"]] = body["who"]
            return json_response(200, {})
        return json_response(404, {"error": f"no such control: {req.method} {req.path}"})

    @staticmethod
    def release(rule):
        n = len(rule.held)
        for event in rule.held:
            event.set()
        rule.held = []
        return n

    # --- applying rules ---------------------------------------------------
    async def apply(self, flow, phase):
        for rule in self.rules:
            if not rule.matches(flow, phase):
                continue
            flow.metadata.setdefault("rules", []).append(rule.id)
            spec = rule.spec
            if rule.action == "status":
                flow.metadata["answered"] = phase == "request"
                flow.response = json_response(
                    int(spec["status"]),
                    spec.get("body", {"errcode": "M_UNKNOWN", "error": "injected by the QA fault proxy"}),
                )
            elif rule.action == "delay_ms":
                await asyncio.sleep(int(spec["delay_ms"]) / 1000)
            elif rule.action == "hold":
                event = asyncio.Event()
                rule.held.append(event)
                await event.wait()
            elif rule.action == "drop":
                flow.kill()
                return
            elif rule.action == "replace" and flow.response is not None:
                text = flow.response.get_text()
                for old, new in spec["replace"]:
                    text = text.replace(old, new)
                flow.response.set_text(text)
            elif rule.action == "spoof" and flow.response is not None:
                try:
                    doc = json.loads(flow.response.get_text())
                except ValueError:
                    continue
                changed = False
                timelines = [room.get("timeline", {}).get("events", []) for room in doc.get("rooms", {}).get("join", {}).values()]
                for events in timelines + [doc.get("chunk", [])]:
                    for event in events:
                        if event.get("type") == "m.room.encrypted" and event.get("sender") == spec["spoof"]["from"]:
                            event["sender"] = spec["spoof"]["to"]
                            changed = True
                if changed:
                    flow.response.set_text(json.dumps(doc))
            elif rule.action == "remove" and flow.response is not None:
                try:
                    doc = json.loads(flow.response.get_text())
                except ValueError:
                    continue
                if remove_value(doc, spec["remove"]["path"], spec["remove"]["value"]):
                    flow.response.set_text(json.dumps(doc))

    async def request(self, flow):
        if flow.request.path.startswith(CONTROL):
            flow.response = self.control(flow)
            return
        await self.apply(flow, "request")

    async def response(self, flow):
        if flow.request.path.startswith(CONTROL):
            return
        if not flow.metadata.get("answered"):
            # Not when a request-phase rule answered it: the server never saw it.
            await self.apply(flow, "response")
        self.keep_clients_here(flow)
        self.note(flow)

    @staticmethod
    def keep_clients_here(flow):
        """A login answer's `well_known` names the homeserver's own URL, and
        clients switch to it: it is rewritten to name this proxy."""
        if flow.request.path.split("?")[0].endswith("/login") and flow.response is not None:
            try:
                doc = json.loads(flow.response.get_text())
            except ValueError:
                return
            hs = doc.get("well_known", {}).get("m.homeserver")
            if isinstance(hs, dict) and "base_url" in hs:
                host, port = flow.client_conn.sockname[:2]
                hs["base_url"] = f"http://{host}:{port}/"
                flow.response.set_text(json.dumps(doc))

    def error(self, flow):
        if not flow.request.path.startswith(CONTROL):
            self.note(flow)

    def note(self, flow):
        req = flow.request
        token = token_of(req)
        entry = {
            "method": req.method,
            "path": req.path.split("?")[0],
            "who": self.names.get(token, "?") if token else None,
            # A dropped or failed exchange: no status reached the client.
            "status": flow.response.status_code if flow.response and not flow.error else None,
            "rules": flow.metadata.get("rules", []),
        }
        if "/sendToDevice/" in req.path:
            try:
                messages = json.loads(req.get_text() or "{}").get("messages", {})
                entry["users"] = len(messages)
                entry["devices"] = sum(len(d) for d in messages.values())
            except (ValueError, AttributeError):
                pass
        self.log.append(entry)


addons = [Faults()]
