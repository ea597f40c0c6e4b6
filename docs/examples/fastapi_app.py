# fastapi_app.py: uvicorn fastapi_app:app --host 127.0.0.1 --port 8000
# No JWT code: the caller comes from the gateway's X-Auth-* headers.
from fastapi import FastAPI, Header, WebSocket

app = FastAPI()


@app.get("/notes")
def notes(x_auth_subject: str = Header(), x_auth_scope: str = Header("")):
    return {"owner": x_auth_subject, "scope": x_auth_scope.split()}


@app.websocket("/ws")  # WebSockets pass through once the handshake is allowed
async def ws(socket: WebSocket):
    await socket.accept()
    await socket.send_text(f"hello {socket.headers['x-auth-subject']}")
