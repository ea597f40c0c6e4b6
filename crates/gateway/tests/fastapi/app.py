"""The upstream of the gateway's e2e tests: a FastAPI app with no JWT code of its own.

It reads the identity headers the gateway adds (X-Auth-Subject, X-Auth-Scope,
X-Auth-Client-Id) and answers with what it saw. Every request is recorded, so a test can
ask the app directly (not through the gateway) whether a request reached it. Only
/identity-jwt verifies something: the gateway's optional identity JWT, with PyJWT and the
gateway's JWKS (GATEWAY_URL), as an upstream that wants proof of the gateway would.
"""

import asyncio
import os

import jwt
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response

app = FastAPI()
SEEN = []


@app.middleware("http")
async def record(request: Request, call_next):
    SEEN.append(request.url.path)
    return await call_next(request)


def identity(request: Request):
    return {
        "subject": request.headers.get("x-auth-subject"),
        "scope": request.headers.get("x-auth-scope"),
        "client_id": request.headers.get("x-auth-client-id"),
    }


@app.get("/_seen")
async def seen():
    return {"paths": SEEN}


@app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
async def echo(path: str, request: Request):
    if path == "slow":
        await asyncio.sleep(30)
    if path == "big-header":
        return Response("big", headers={"x-big": "a" * 200_000})
    if path == "identity-jwt":
        return verify_identity_jwt(request)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {
        "path": request.url.path,
        "query": request.url.query,
        "identity": identity(request),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
        "body_bytes": size,
    }


def verify_identity_jwt(request: Request):
    gateway = os.environ["GATEWAY_URL"]
    token = request.headers.get("x-auth-identity")
    if token is None:
        return JSONResponse({"verified": False, "why": "no identity JWT"}, status_code=401)
    keys = jwt.PyJWKClient(gateway + "/.well-known/tessera-gateway/jwks.json")
    try:
        key = keys.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["ES256", "EdDSA", "RS256"],
            audience=os.environ["SELF_URL"],
            issuer=gateway,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as e:
        return JSONResponse({"verified": False, "why": str(e)}, status_code=401)
    header = jwt.get_unverified_header(token)
    return {"verified": True, "claims": claims, "typ": header.get("typ")}


@app.websocket("/ws")
async def ws(socket: WebSocket):
    SEEN.append("/ws")
    await socket.accept()
    subject = socket.headers.get("x-auth-subject")
    await socket.send_text(f"hello {subject}")
    try:
        while True:
            text = await socket.receive_text()
            await socket.send_text("echo " + text)
    except Exception:
        pass
