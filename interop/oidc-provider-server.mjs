// Starts panva/oidc-provider with attestation-based client authentication enabled, for the
// interop test (interop_test.go). Environment: ATTESTER_JWK (the attester's public JWK, JSON).
// Prints "READY <issuer>" on stdout once it listens on a loopback port of its own choosing.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const attesterJwk = JSON.parse(process.env.ATTESTER_JWK);
const attesterKey = await jose.importJWK(attesterJwk, attesterJwk.alg || 'ES256');

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    { client_id: 'agent', token_endpoint_auth_method: 'attest_jwt_client_auth', grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'read' },
    { client_id: 'agent-dpop', token_endpoint_auth_method: 'attest_jwt_client_auth_dpop', grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'read' },
  ],
  clientAuthMethods: ['attest_jwt_client_auth', 'attest_jwt_client_auth_dpop', 'none'],
  scopes: ['read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true, nonceSecret: randomBytes(32) },
    attestClientAuth: {
      enabled: true,
      ack: 'draft-12',
      challengeSecret: randomBytes(32),
      getAttestationSignaturePublicKey: async () => attesterKey,
      assertAttestationJwtAndPop: async () => {},
    },
  },
});
server.on('request', provider.callback());
process.stdout.write(`READY ${issuer}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
