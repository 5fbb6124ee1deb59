// An OpenID Connect provider for ratchet's single sign-on tests: the
// `oidc-provider` package (pinned in package.json) with its development
// login and consent pages, which take any user name (the password is not
// checked): what a company's identity provider is to Synapse, minus the
// directory behind it.
//
//   node provider.mjs PORT REDIRECT_URI
//
// Issuer http://127.0.0.1:PORT; two clients, `synapse-one` and
// `synapse-two` (secret `secret`), both redirecting to REDIRECT_URI
// (Synapse's /_synapse/client/oidc/callback): a server that offers two
// identity providers. Prints "ready" once it listens; stops when stdin
// closes.
import Provider from "oidc-provider";

const [port, redirect] = process.argv.slice(2);
const client = (id) => ({
  client_id: id,
  client_secret: "secret",
  redirect_uris: [redirect],
  grant_types: ["authorization_code"],
  response_types: ["code"],
  token_endpoint_auth_method: "client_secret_basic",
});
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [client("synapse-one"), client("synapse-two")],
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub, preferred_username: sub, name: `Test ${sub}` }; } };
  },
  claims: { openid: ["sub"], profile: ["name", "preferred_username"] },
  pkce: { required: () => false },
  cookies: { keys: ["ratchet-test"] },
  features: { devInteractions: { enabled: true } },
});
// Quiet: the development pages warn on every start.
console.warn = () => {};
const server = provider.listen(Number(port), "127.0.0.1", () => console.log("ready"));
process.stdin.resume();
process.stdin.on("end", () => { server.close(); process.exit(0); });
