// The OpenID Connect provider of the single sign-on tests: panva's oidc-provider (OpenID Certified), on loopback.
//
//   node provider.mjs CONFIG.json
//
// CONFIG.json: {"port": 5555, "client": {"client_id", "client_secret", "redirect_uris": [...]},
//               "accounts": "ACCOUNTS.json"}
// ACCOUNTS.json maps a login to the claims the provider gives it besides `sub` (the login), e.g.
// {"ada": {"email": "ada@example.org", "groups": ["crowd-operators"]}}. It is read again at every sign-in, so a test
// changes an account's groups at the provider by rewriting it. Any other login signs in with no claims but `sub`.
//
// Its quick-start sign-in page (devInteractions) accepts any login with any password; consent is taken as given for
// the one client (as a company's provider does for its own applications). ID tokens are signed RS256 with a key made
// at start and published at the JWKS endpoint. Prints "listening on ISSUER" once it answers.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: 'test-signing-key',
  alg: 'RS256',
  use: 'sig',
};

function accountClaims(login) {
  const accounts = JSON.parse(readFileSync(config.accounts, 'utf8'));
  return { ...(accounts[login] ?? {}), sub: login };
}

const provider = new Provider(issuer, {
  clients: [{ ...config.client, token_endpoint_auth_method: 'client_secret_post' }],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['crowdscope-test-provider-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, login) {
    return { accountId: login, claims: async () => accountClaims(login) };
  },
  // Consent for the test client is given: a grant of every scope it asks for, made on its first authorization.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      return ctx.oidc.provider.Grant.find(grantId);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
    await grant.save();
    return grant;
  },
});

provider.listen(config.port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
