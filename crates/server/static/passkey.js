// The one script of the sign-in pages: runs the WebAuthn ceremony a form describes
// (data-passkey="create" or "get", data-options = the server's options as JSON) when the
// form is submitted, puts the credential (JSON) into its "response" field and submits.
// Served by the server itself (/passkey.js); no other script, no external asset.
"use strict";
(function () {
  const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const bytes = (s) => Uint8Array.from(
    atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const creds = (list) => (list || []).map((c) => ({ ...c, id: bytes(c.id) }));
  function show(message) {
    const alert = document.getElementById("form-error");
    if (alert) alert.textContent = message;
  }
  async function run(form) {
    const options = JSON.parse(form.dataset.options).publicKey;
    options.challenge = bytes(options.challenge);
    let out;
    if (form.dataset.passkey === "create") {
      options.user.id = bytes(options.user.id);
      options.excludeCredentials = creds(options.excludeCredentials);
      const c = await navigator.credentials.create({ publicKey: options });
      out = {
        id: c.id, rawId: b64(c.rawId), type: c.type,
        response: {
          attestationObject: b64(c.response.attestationObject),
          clientDataJSON: b64(c.response.clientDataJSON),
        },
        extensions: c.getClientExtensionResults(),
      };
    } else {
      options.allowCredentials = creds(options.allowCredentials);
      const c = await navigator.credentials.get({ publicKey: options });
      out = {
        id: c.id, rawId: b64(c.rawId), type: c.type,
        response: {
          authenticatorData: b64(c.response.authenticatorData),
          clientDataJSON: b64(c.response.clientDataJSON),
          signature: b64(c.response.signature),
          userHandle: c.response.userHandle ? b64(c.response.userHandle) : null,
        },
        extensions: c.getClientExtensionResults(),
      };
    }
    form.elements.response.value = JSON.stringify(out);
    form.submit();
  }
  for (const form of document.querySelectorAll("form[data-passkey]")) {
    form.addEventListener("submit", (event) => {
      if (form.elements.response.value) return;
      event.preventDefault();
      if (!window.PublicKeyCredential) {
        show("This browser does not support passkeys.");
        return;
      }
      run(form).catch(() => show("The passkey was not used. Try again, or use another way to sign in."));
    });
  }
})();
