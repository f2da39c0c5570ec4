// A real OpenID provider for Strait's federation tests: panva/node-oidc-provider (the certified
// implementation) with its development login screens (any login name, any password), a
// confidential client per audience, and the signing key the test hands it, so that the test can
// also sign deliberately broken tokens with the provider's own key for the negative cases.
//
//   node server.mjs PORT            (env OIDC_JWKS: {"keys": [private JWK]}, OIDC_GROUPS: {"login": [...]})
//
// Prints "oidc-provider listening on http://127.0.0.1:PORT" when ready.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const groups = JSON.parse(process.env.OIDC_GROUPS || '{}');
const client = (id) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  redirect_uris: ['http://127.0.0.1:9/cb'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_post',
});

const provider = new Provider(issuer, {
  clients: [client('strait'), client('other-app')],
  jwks: JSON.parse(process.env.OIDC_JWKS),
  claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
  scopes: ['openid', 'email', 'groups'],
  // Scope claims go into the ID token itself (the token is all Strait sees).
  conformIdTokenClaims: false,
  pkce: { required: () => false },
  ttl: { IDToken: 600 },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.org`, email_verified: true, groups: groups[id] || [] };
      },
    };
  },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
