"""Verify a Tessera ID token the way a relying party with default settings does.

OpenID Connect Registration section 2: a client that registers no
id_token_signed_response_alg expects RS256, so this RP accepts RS256 only (as Spring
Security, .NET and Node's jsonwebtoken do by default) and finds the key by `kid` in the
JWKS with PyJWT's PyJWKClient.

Usage: python pyjwt_verify_id_token.py BASE_URL CLIENT_ID NONCE < id_token
Prints the verified claims as JSON; exits non-zero when verification fails.
"""

import json
import sys

import jwt

RP_DEFAULT_ALGORITHMS = ["RS256"]


def main() -> int:
    base, client_id, nonce = sys.argv[1], sys.argv[2], sys.argv[3]
    token = sys.stdin.read().strip()
    client = jwt.PyJWKClient(f"{base}/jwks.json")
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key,
        algorithms=RP_DEFAULT_ALGORITHMS,
        audience=client_id,
        issuer=base,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    if claims.get("nonce") != nonce:
        print(f"nonce {claims.get('nonce')!r} is not {nonce!r}", file=sys.stderr)
        return 2
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
