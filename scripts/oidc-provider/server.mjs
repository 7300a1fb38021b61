// A real OpenID Provider for the auth service's SSO tests and the demo: the certified
// `oidc-provider` package (https://github.com/panva/node-oidc-provider) on loopback, with a small
// login page of its own instead of the package's development interactions.
//
//   node server.mjs <config.json>
//
// config.json: {"port": 0, "clients": [oidc-provider client metadata...],
//               "accounts": {"<login>": {"password": "...", "claims": {"email": ..., "groups": [...]}}}}
// Prints one line {"issuer": "http://127.0.0.1:<port>"} once it listens.
// With "control": true, the provider's user store can be changed while it runs (as an IdP
// administrator would): PUT /control/accounts/<login> {"password", "claims"}, DELETE removes.
import { generateKeyPair, exportJWK } from "jose";
import { readFileSync } from "node:fs";
import http from "node:http";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts || {};

const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: "test-rs256", alg: "RS256", use: "sig" };

const server = http.createServer();
await new Promise((resolve) => server.listen(config.port || 0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [signing] },
  pkce: { required: () => true },
  scopes: ["openid", "email", "profile", "groups", "offline_access"],
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "preferred_username"],
    groups: ["groups"],
  },
  // The ID token carries the scopes' claims (groups included), not only the userinfo endpoint.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["soc-portal-test-oidc-cookie-key"] },
  // Refresh tokens for every client allowed the grant (the relying party re-checks users with it).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed("refresh_token"),
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, preferred_username: id, ...account.claims }; } };
  },
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = "";
    req.on("data", (chunk) => { data += chunk; });
    req.on("end", () => resolve(Object.fromEntries(new URLSearchParams(data))));
    req.on("error", reject);
  });
}

provider.use(async (ctx, next) => {
  const control = ctx.path.match(/^\/control\/accounts\/([^/]+)$/);
  if (control && config.control) {
    if (ctx.method === "DELETE") delete accounts[control[1]];
    else if (ctx.method === "PUT") accounts[control[1]] = JSON.parse(await new Promise((resolve) => {
      let data = "";
      ctx.req.on("data", (chunk) => { data += chunk; });
      ctx.req.on("end", () => resolve(data));
    }));
    ctx.status = 204;
    return undefined;
  }
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === "GET") {
    ctx.type = "html";
    ctx.body = `<!doctype html><title>Sign in</title><form method="post" action="/interaction/${details.uid}/login">
<input name="login" autofocus><input name="password" type="password"><button>Sign in</button></form>`;
    return undefined;
  }
  if (ctx.method === "POST" && match[2]) {
    const form = await readForm(ctx.req);
    const account = accounts[form.login];
    if (!account || account.password !== form.password) {
      ctx.status = 401;
      ctx.body = "invalid login or password";
      return undefined;
    }
    const grant = new provider.Grant({ accountId: form.login, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      ctx.req, ctx.res, { login: { accountId: form.login }, consent: { grantId } }, { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
    return undefined;
  }
  return next();
});

server.on("request", provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
