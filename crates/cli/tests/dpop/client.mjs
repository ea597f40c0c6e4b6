// A DPoP client written with oauth4webapi (an OpenID-certified client library), run
// against `tessera serve` by the e2e test `interop_dpop` and shown in the README:
//
//   node client.mjs ISSUER CC_CLIENT_ID CC_CLIENT_SECRET PUBLIC_CLIENT_ID USERNAME
//   (the password on standard input)
//
// It gets a DPoP-bound token with client_credentials, then signs a user in with the
// password grant as a public client and refreshes twice, every request with a proof by
// the same key pair; a `use_dpop_nonce` answer is retried once with the server's nonce.
// It prints one JSON object: the tokens it got and the key's thumbprint.

import * as oauth from 'oauth4webapi'

const [issuerUrl, ccId, ccSecret, publicId, username] = process.argv.slice(2)
const password = (await new Response(process.stdin).text()).trim()
const issuer = new URL(issuerUrl)
// Loopback test server over plain HTTP; a real deployment is https.
const insecure = { [oauth.allowInsecureRequests]: true }

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, insecure),
)

// One key pair per client instance; its private key never leaves this process.
const keyPair = await oauth.generateKeyPair('ES256')

/// Runs `request` with a DPoP proof, once more if the server asks for its nonce.
async function withNonceRetry(request) {
  try {
    return await request()
  } catch (err) {
    if (oauth.isDPoPNonceError(err)) {
      return await request()
    }
    throw err
  }
}

// client_credentials, confidential client.
const service = { client_id: ccId }
const serviceDpop = oauth.DPoP(service, keyPair)
const cc = await withNonceRetry(async () => {
  const response = await oauth.clientCredentialsGrantRequest(
    as,
    service,
    oauth.ClientSecretBasic(ccSecret),
    new URLSearchParams(),
    { DPoP: serviceDpop, ...insecure },
  )
  return oauth.processClientCredentialsResponse(as, service, response)
})

// password + refresh_token, public client: its refresh token is bound to the key.
const app = { client_id: publicId }
const appDpop = oauth.DPoP(app, keyPair)
const login = await withNonceRetry(async () => {
  const response = await oauth.genericTokenEndpointRequest(
    as,
    app,
    oauth.None(),
    'password',
    new URLSearchParams({ username, password }),
    { DPoP: appDpop, ...insecure },
  )
  return oauth.processGenericTokenEndpointResponse(as, app, response)
})
let refreshToken = login.refresh_token
const refreshed = []
for (let i = 0; i < 2; i++) {
  const next = await withNonceRetry(async () => {
    const response = await oauth.refreshTokenGrantRequest(
      as,
      app,
      oauth.None(),
      refreshToken,
      { DPoP: appDpop, ...insecure },
    )
    return oauth.processRefreshTokenResponse(as, app, response)
  })
  refreshed.push(next.access_token)
  refreshToken = next.refresh_token
}

console.log(
  JSON.stringify({
    jkt: await appDpop.calculateThumbprint(),
    client_credentials: { token_type: cc.token_type, access_token: cc.access_token },
    password: { token_type: login.token_type, access_token: login.access_token },
    refreshed,
    refresh_token: refreshToken,
  }),
)
