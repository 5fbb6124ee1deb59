// An OAuth 2.0 authorization server for ratchet's `login --oauth` tests,
// standing in for the Matrix Authentication Service (MAS), which is not in
// the package registries: the `oidc-provider` package (pinned in
// package.json) in front of a Synapse configured with
// `matrix_authentication_service` (scripts/run-synapse.sh,
// RATCHET_SYNAPSE_MAS_ENDPOINT). What MAS does for Synapse, this does the
// same way, through Synapse's MAS-only API (/_synapse/mas/*, authorised by
// the shared secret):
//
// - dynamic client registration (RFC 7591), the authorization code flow
//   with PKCE, refresh tokens, revocation (RFC 7009), introspection at
//   /oauth2/introspect (where Synapse asks) with the `username` Synapse
//   needs, and the user and the device made in Synapse at the first token;
// - the Matrix scopes (`urn:matrix:org.matrix.msc2967.client:api:*` and
//   the per-login `...:device:ID`) as scopes of one resource server, so
//   that oidc-provider keeps them;
// - the account page's cross-signing reset approval (MSC4312,
//   /account?action=org.matrix.cross_signing_reset), after a sign-in.
//
//   node oauth-provider.mjs PORT SYNAPSE_URL SHARED_SECRET [TLS_PORT CERT KEY]
//
// Issuer http://127.0.0.1:PORT; with TLS_PORT, https://127.0.0.1:TLS_PORT
// (CERT, KEY: PEM files), as RFC 7009 wants revocation over TLS (the
// SDK's OAuth client refuses it otherwise), and PORT stays plain HTTP for
// Synapse alone (its introspection). The login page takes any user name (the
// password is not checked). AT_TTL sets the access tokens' lifetime in
// seconds (default 300). Prints "ready" once it listens; stops when stdin
// closes.
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import Provider, { errors } from "oidc-provider";

const [port, synapse, secret, tlsPort, cert, key] = process.argv.slice(2);
const issuer = tlsPort ? `https://127.0.0.1:${tlsPort}` : `http://127.0.0.1:${port}`;
const DEVICE = /^urn:matrix:(?:org\.matrix\.msc2967\.)?client:device:(.+)$/;
const RESOURCE = "urn:matrix:synapse";
const MATRIX = /^urn:matrix:(?:org\.matrix\.msc2967\.)?client:/;

// Synapse's MAS-only API, authorised by the shared secret.
async function mas(path, body) {
  const r = await fetch(`${synapse}/_synapse/mas/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`/_synapse/mas/${path}: ${r.status} ${await r.text()}`);
  return r.status;
}
const deviceOf = (scope) => (scope || "").split(" ").map((s) => DEVICE.exec(s)?.[1]).find(Boolean);

const provider = new Provider(issuer, {
  clients: [{
    // Synapse only introspects: no grants, no redirects.
    client_id: "synapse", client_secret: secret,
    redirect_uris: [], response_types: [], grant_types: [],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub, preferred_username: sub }; } };
  },
  cookies: { keys: ["ratchet-test"] },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // The Matrix scopes belong to one resource server, Synapse, the
    // default resource of every request; its scope set is computed per
    // request, so the per-login device scope is kept (oidc-provider drops
    // every scope it does not know otherwise).
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      async getResourceServerInfo(ctx, resource) {
        if (resource !== RESOURCE) throw new errors.InvalidTarget();
        const e = ctx.oidc.entities;
        const asked = [ctx.oidc.params.scope, e.AuthorizationCode?.scope, e.RefreshToken?.scope].join(" ").split(" ");
        const scope = [...new Set(asked.filter((s) => MATRIX.test(s)))].join(" ");
        return { scope, audience: RESOURCE, accessTokenFormat: "opaque" };
      },
    },
  },
  // Synapse asks {endpoint}/oauth2/introspect.
  routes: { introspection: "/oauth2/introspect" },
  // Synapse requires account_management_uri (MSC4191).
  discovery: {
    account_management_uri: `${issuer}/account`,
    account_management_actions_supported: ["org.matrix.cross_signing_reset"],
  },
  // Refresh tokens without offline_access (as MAS), not tied to the
  // browser's session; a revocation ends the whole grant.
  async issueRefreshToken(_ctx, client) { return client.grantTypeAllowed("refresh_token"); },
  async expiresWithSession() { return false; },
  revokeGrantPolicy() { return true; },
  // Synapse reads `username` (the localpart) from introspection; the user
  // and the device must exist in Synapse, as MAS makes them.
  async extraTokenClaims(_ctx, token) {
    if (token.kind !== "AccessToken") return undefined;
    await mas("provision_user", { localpart: token.accountId });
    const device = deviceOf(token.scope);
    if (device) await mas("upsert_device", { localpart: token.accountId, device_id: device });
    return { username: token.accountId };
  },
  pkce: { required: (_ctx, client) => client.clientAuthMethod === "none" },
  ttl: { AccessToken: Number(process.env.AT_TTL || 300) },
});

const form = (user) =>
  `<!doctype html><html><body><p>Sign in to allow a cross-signing reset${user ? ` for ${user}` : ""}.</p>` +
  `<form method="post"><input name="login"><input name="password" type="password">` +
  `<button type="submit">Sign in</button></form></body></html>`;

provider.use(async (ctx, next) => {
  // Synapse authenticates to introspection with `Bearer <secret>`: the
  // static client's client_secret_basic.
  if (ctx.path === "/oauth2/introspect" && ctx.get("authorization") === `Bearer ${secret}`) {
    ctx.req.headers.authorization = `Basic ${Buffer.from(`synapse:${secret}`).toString("base64")}`;
  }
  // The account page: MSC4312's approval of a cross-signing reset, for the
  // user signed in here (or who signs in on this page).
  if (ctx.path === "/account") {
    let user = (await provider.Session.get(ctx))?.accountId;
    if (!user && ctx.method === "POST") {
      let body = "";
      for await (const chunk of ctx.req) body += chunk;
      user = new URLSearchParams(body).get("login") || undefined;
    }
    if (!user) { ctx.type = "html"; ctx.body = form(); return; }
    if (ctx.query.action === "org.matrix.cross_signing_reset") {
      await mas("allow_cross_signing_reset", { localpart: user });
      ctx.body = `Cross-signing reset allowed for ${user}.`;
    } else ctx.body = `Account ${user}.`;
    return;
  }
  await next();
  // oidc-provider names its endpoints from the request's address: Synapse
  // asks on the plain-HTTP port, and passes the document on to clients
  // (its /auth_metadata), which must see the HTTPS ones.
  if (tlsPort && ctx.path === "/.well-known/openid-configuration" && ctx.body) {
    const plain = `http://127.0.0.1:${port}`;
    ctx.body = JSON.parse(JSON.stringify(ctx.body).replaceAll(plain, issuer));
  }
  // Synapse honours `expires_in` only (relative to when it asked): without
  // it a token stays valid there until its 2-minute cache ends.
  if (ctx.path === "/oauth2/introspect" && ctx.body?.active && ctx.body.exp) {
    ctx.body.expires_in = Math.max(0, ctx.body.exp - Math.floor(Date.now() / 1000));
  }
  // At a revocation the Synapse device goes, as with MAS: Synapse caches
  // introspection answers, and a deleted device ends its tokens at once.
  if (ctx.path === "/token/revocation") {
    const t = ctx.oidc?.entities?.AccessToken || ctx.oidc?.entities?.RefreshToken;
    const device = t && deviceOf(t.scope);
    if (device) await mas("delete_device", { localpart: t.accountId, device_id: device });
  }
});
// Quiet: the development pages warn on every start.
console.warn = () => {};
const servers = [http.createServer(provider.callback())];
if (tlsPort) servers.push(https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, provider.callback()));
let listening = 0;
servers[0].listen(Number(port), "127.0.0.1", () => ++listening === servers.length && console.log("ready"));
servers[1]?.listen(Number(tlsPort), "127.0.0.1", () => ++listening === servers.length && console.log("ready"));
process.stdin.resume();
process.stdin.on("end", () => { servers.forEach((s) => s.close()); process.exit(0); });
