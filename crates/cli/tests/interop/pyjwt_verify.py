"""Verify a Tessera access token with PyJWT's PyJWKClient (an independent JOSE stack).

Usage: python pyjwt_verify.py BASE_URL AUDIENCE < token
Prints the verified claims as JSON; exits non-zero when verification fails.
Needs PyJWT with the `crypto` extra (pip install 'pyjwt[crypto]').
"""

import json
import sys

import jwt


def main() -> int:
    base, audience = sys.argv[1], sys.argv[2]
    token = sys.stdin.read().strip()
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        print(f"unexpected typ {header.get('typ')!r}", file=sys.stderr)
        return 2
    client = jwt.PyJWKClient(f"{base}/jwks.json")
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key,
        algorithms=["EdDSA", "ES256", "RS256"],
        audience=audience,
        issuer=base,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    print(json.dumps(claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
