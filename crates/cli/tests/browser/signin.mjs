// Browser sign-in in headless Chromium (Debian's /usr/bin/chromium driven by
// playwright-core): the example single-page app signs in with code + PKCE through the
// login and consent pages, calls the example resource server, refreshes, signs out; and
// the refusals: wrong password, tampered state, wrong PKCE verifier, reused code, a form
// post without its CSRF token. Run by crates/cli/tests/e2e/browser.rs, which starts
// `tessera serve` and the example resource server and passes:
//   SPA_URL, ISSUER, USERNAME, PASSWORD, SCREENSHOT_DIR, CHROMIUM (executable path), and
//   COOKIE_URL (the cookie-mode page, whose script never sees the access token), and
//   MFA_USER (a user without a second factor yet, with PASSWORD, for the TOTP scenario),
//   STEP_UP_USER (another such user, for the RFC 9470 step-up scenario),
//   ABANDON_USER (another, for the abandoned step-up).
import { createHash, createHmac } from "node:crypto";
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const SPA = env("SPA_URL");
const ISSUER = env("ISSUER");
const USER = env("USERNAME");
const PASSWORD = env("PASSWORD");
const SHOTS = env("SCREENSHOT_DIR");

// launch() gives Chromium a fresh temporary --user-data-dir; every scenario gets its
// own context (its own cookies and storage).
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  timeout: 60_000,
});

let failed = false;
async function scenario(name, fn) {
  const context = await browser.newContext();
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  try {
    await fn(page);
    console.log(`ok - ${name}`);
  } catch (e) {
    failed = true;
    console.log(`not ok - ${name}\n${e.stack}`);
    await page.screenshot({ path: join(SHOTS, `failure-${name.replace(/\W+/g, "-")}.png`) }).catch(() => {});
  } finally {
    await context.close();
  }
}

const status = (page) => page.locator("#status");

/// From the SPA, up to the login page.
async function toLogin(page) {
  await page.goto(SPA);
  await assert.doesNotReject(status(page).filter({ hasText: /Not signed in|Signed out/ }).waitFor());
  await page.click("#signin");
  await page.waitForURL((u) => u.href.startsWith(ISSUER + "/authorize"));
  await page.locator("h1", { hasText: "Sign in" }).waitFor();
}

/// Fills the login form with the keyboard only: username has focus (autofocus).
async function typeCredentials(page, user, password) {
  // Autofocus lands once the page is parsed, which may be a moment after the heading
  // shows on a loaded machine: wait for it (bounded), then insist on it.
  await page
    .waitForFunction(() => document.activeElement?.id === "username", null, { timeout: 5000 })
    .catch(() => {});
  assert.equal(await page.evaluate(() => document.activeElement?.id), "username");
  await page.keyboard.type(user);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "password");
  await page.keyboard.type(password);
  await page.keyboard.press("Enter");
}

/// The full sign-in; returns the code seen on the redirect back to the SPA.
async function signIn(page, { screenshots = false } = {}) {
  let code = null;
  const spy = (frame) => {
    const u = new URL(frame.url());
    if (frame === page.mainFrame() && u.searchParams.get("code")) code = u.searchParams.get("code");
  };
  page.on("framenavigated", spy);
  await toLogin(page);
  if (screenshots) await page.screenshot({ path: join(SHOTS, "login.png"), fullPage: true });
  await typeCredentials(page, USER, PASSWORD);
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  if (screenshots) await page.screenshot({ path: join(SHOTS, "consent.png"), fullPage: true });
  // Keyboard again: "Allow" has focus.
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Allow");
  await page.keyboard.press("Enter");
  await page.waitForURL((u) => u.href.startsWith(SPA));
  await status(page).filter({ hasText: /Signed in|refused|failed/ }).waitFor();
  page.off("framenavigated", spy);
  return code;
}

await scenario("sign in, consent, code exchange, API call, refresh, logout", async (page) => {
  const code = await signIn(page, { screenshots: true });
  assert.ok(code?.startsWith("tsr_ac_"), "a code came back");
  assert.match(await status(page).textContent(), /^Signed in as u_/);
  assert.equal(new URL(page.url()).search, "", "the code is gone from the address bar");
  // The session cookie is HttpOnly: the page's script cannot see it.
  assert.ok(!(await page.evaluate(() => document.cookie)).includes("tessera_session"));

  await page.click("#call");
  await status(page).filter({ hasText: "API answered 200." }).waitFor();
  const me = JSON.parse(await page.locator("#out").textContent());
  assert.match(me.sub, /^u_/);
  assert.equal(me.scope, "openid profile notes:read notes:write");

  await page.click("#refresh");
  await status(page).filter({ hasText: "Tokens refreshed." }).waitFor();
  await page.click("#call");
  await status(page).filter({ hasText: "API answered 200." }).waitFor();

  // Sign out: the refresh token is revoked, the session ended after a confirmation.
  await page.click("#signout");
  await page.waitForURL((u) => u.href.startsWith(ISSUER + "/logout"));
  await page.locator("h1", { hasText: "Sign out?" }).waitFor();
  await page.click("button[type=submit]");
  await page.waitForURL((u) => u.href.startsWith(SPA));
  await status(page).filter({ hasText: "Signed out." }).waitFor();
  // Signed out at the server too: the next sign-in asks for the password again.
  await toLogin(page);
});

await scenario("a wrong password shows one generic, announced message", async (page) => {
  await toLogin(page);
  await typeCredentials(page, USER, "not the password");
  const alert = page.locator("[role=alert]");
  await alert.filter({ hasText: "Wrong username or password." }).waitFor();
  assert.equal(await page.locator("#username").getAttribute("aria-invalid"), "true");
  assert.equal(await page.locator("#username").inputValue(), USER);
  assert.equal(await page.locator("#password").inputValue(), "", "the password is not echoed");
  await page.locator("#username").fill("nobody-by-that-name");
  await page.locator("#password").fill(PASSWORD);
  await page.locator("#password").press("Enter");
  await alert.filter({ hasText: "Wrong username or password." }).waitFor();
});

await scenario("a form post without its CSRF token is refused", async (page) => {
  await toLogin(page);
  await page.evaluate(() => document.querySelector("input[name=csrf]").remove());
  await page.locator("#username").fill(USER);
  await page.locator("#password").fill(PASSWORD);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === ISSUER + "/authorize" && r.request().method() === "POST"),
    page.locator("#password").press("Enter"),
  ]);
  assert.equal(response.status(), 403);
  await page.locator("[role=alert]", { hasText: "sent from another site" }).waitFor();
});

await scenario("a tampered state is refused by the app, no code exchanged", async (page) => {
  let exchanged = false;
  page.on("request", (r) => { if (r.url() === ISSUER + "/token") exchanged = true; });
  // Coming back to the SPA, the state it saved is no longer the one in the URL.
  await page.addInitScript((spa) => {
    if (location.href.startsWith(spa) && location.search.includes("code=")) {
      const saved = JSON.parse(sessionStorage.getItem("pkce"));
      sessionStorage.setItem("pkce", JSON.stringify({ ...saved, state: "tampered" }));
    }
  }, SPA);
  await signIn(page);
  assert.match(await status(page).textContent(), /state does not match/);
  assert.equal(exchanged, false);
});

await scenario("a wrong PKCE verifier is refused by the token endpoint", async (page) => {
  await page.addInitScript((spa) => {
    if (location.href.startsWith(spa) && location.search.includes("code=")) {
      const saved = JSON.parse(sessionStorage.getItem("pkce"));
      sessionStorage.setItem("pkce", JSON.stringify({ ...saved, verifier: "x".repeat(43) }));
    }
  }, SPA);
  await signIn(page);
  assert.match(await status(page).textContent(), /Code exchange failed: invalid_grant/);
});

await scenario("a reused code is refused and revokes the tokens issued from it", async (page) => {
  const code = await signIn(page);
  assert.match(await status(page).textContent(), /^Signed in as/);
  // An attacker replays the code from the address bar history (any verifier).
  const replay = await page.evaluate(async ({ issuer, code }) => {
    const cfg = await (await fetch("config.json")).json();
    const r = await fetch(issuer + "/token", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code", client_id: cfg.client_id, code,
        redirect_uri: location.origin + location.pathname, code_verifier: "y".repeat(43),
      }),
    });
    return { status: r.status, body: await r.json() };
  }, { issuer: ISSUER, code });
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error, "invalid_grant");
  // The app's tokens from that code are revoked: its refresh fails.
  await page.click("#refresh");
  await status(page).filter({ hasText: "Refresh failed: invalid_grant" }).waitFor();
});

await scenario("cookie mode: the token stays in an HttpOnly cookie, POST needs the CSRF header", async (page) => {
  const COOKIE = env("COOKIE_URL");
  await page.goto(COOKIE);
  await status(page).filter({ hasText: "Signed out." }).waitFor();
  await page.click("#signin");
  await page.waitForURL((u) => u.href.startsWith(ISSUER + "/authorize"));
  await typeCredentials(page, USER, PASSWORD);
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForURL(COOKIE);
  await status(page).filter({ hasText: "Signed in." }).waitFor();
  const jar = await page.context().cookies();
  const at = jar.find((c) => c.name === "notes_at");
  assert.ok(at && at.httpOnly && at.sameSite === "Strict", "an HttpOnly, Strict token cookie");
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(visible.includes("notes_csrf="), "the CSRF cookie is readable");
  assert.ok(!visible.includes(at.value) && !visible.includes("notes_at"), "the token is not");
  assert.ok(!(await page.content()).includes(at.value), "nor in the page");
  // The page's own POST carries X-CSRF-Token and succeeds.
  await page.fill("#text", "from the cookie page");
  await page.click("button[type=submit]");
  await page.locator("#out", { hasText: "POST /notes -> 201" }).waitFor();
  // The same POST without the header (what a forged request would look like) is refused.
  const forged = await page.evaluate(async () => {
    const r = await fetch("/notes", {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: "forged" }),
    });
    return r.status;
  });
  assert.equal(forged, 400);
});

/// RFC 4648 base32 (the TOTP key as the enrolment page shows it).
function base32(s) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0;
  const out = [];
  for (const c of s.replace(/=+$/, "")) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

/// The authenticator app: the RFC 6238 code (SHA-1, 6 digits, 30 s) at `secs`.
function totp(key, secs) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(secs / 30)));
  const h = createHmac("sha1", base32(key)).update(counter).digest();
  const o = h[h.length - 1] & 15;
  return String((h.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

await scenario("enrol TOTP from the sign-in page, then sign in with a code", async (page) => {
  const MFA_USER = env("MFA_USER");
  await toLogin(page);
  await page.fill("#username", MFA_USER);
  await page.fill("#password", PASSWORD);
  await page.check("#enrol");
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Set up a second factor" }).waitFor();
  // The QR code is an inline SVG from the server itself; no image or script is loaded.
  assert.equal(await page.locator(".qr svg").count(), 1);
  assert.equal(await page.locator("img, script").count(), 0);
  await page.screenshot({ path: join(SHOTS, "mfa-enrol.png"), fullPage: true });
  const key = await page.inputValue("#secret");
  assert.match(key, /^[A-Z2-7]{32}$/);
  // A wrong code: announced, the page stays.
  await page.fill("#code", "000000");
  await page.click("button[type=submit]");
  await page.locator("[role=alert]", { hasText: "That code is not right" }).waitFor();
  const now = Date.now() / 1000;
  await page.fill("#code", totp(key, now));
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Your recovery codes" }).waitFor();
  assert.equal(await page.locator(".recovery-codes code").count(), 10);
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForURL((u) => u.href.startsWith(SPA));
  await status(page).filter({ hasText: /^Signed in as u_/ }).waitFor();

  // A fresh browser: password, then the code page; the next step's code (the one just
  // used is spent).
  const context = await browser.newContext();
  const again = await context.newPage();
  try {
    await toLogin(again);
    await again.fill("#username", MFA_USER);
    await again.fill("#password", PASSWORD);
    await again.click("button[type=submit]");
    await again.locator("h1", { hasText: "Enter your code" }).waitFor();
    assert.equal(await again.evaluate(() => document.activeElement?.id), "code");
    await again.screenshot({ path: join(SHOTS, "mfa-code.png"), fullPage: true });
    await again.keyboard.type(totp(key, now + 30));
    await again.keyboard.press("Enter");
    await again.locator("h1", { hasText: "Allow" }).waitFor();
    await again.keyboard.press("Enter");
    await again.waitForURL((u) => u.href.startsWith(SPA));
    await status(again).filter({ hasText: /^Signed in as u_/ }).waitFor();
  } finally {
    await context.close();
  }
});

await scenario("register a passkey, then sign in with it (second factor and alone)", async (page) => {
  // Chromium's virtual authenticator (DevTools WebAuthn domain): a platform passkey
  // device that verifies the user.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2", transport: "internal", hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  const ISSUER_PK = env("PASSKEY_ISSUER");
  const REDIRECT = env("PASSKEY_REDIRECT");
  const USER_PK = env("PASSKEY_USER");
  const challenge = createHash("sha256").update("passkey-verifier-0123456789-0123456789-abcdef").digest("base64url");
  const start = `${ISSUER_PK}/authorize?` + new URLSearchParams({
    response_type: "code", client_id: env("PASSKEY_CLIENT"), redirect_uri: REDIRECT,
    scope: "openid", state: "pk", code_challenge: challenge, code_challenge_method: "S256",
  });
  // Back at the client's redirect URI (the example app's page) with a code.
  const backAtClient = async (p) => {
    const [request] = await Promise.all([
      p.waitForRequest((r) => r.url().startsWith(REDIRECT)),
      p.keyboard.press("Enter"),
    ]);
    assert.match(request.url(), /[?&]code=/);
    await p.waitForURL((u) => u.href.startsWith(REDIRECT));
  };

  // Registration: password, then the enrolment page's "Register a passkey".
  await page.goto(start);
  await page.fill("#username", USER_PK);
  await page.fill("#password", PASSWORD);
  await page.click("button[type=submit]");
  await page.locator("h2", { hasText: "Or register a passkey" }).waitFor();
  assert.equal(await page.locator("label[for=passkey-label]").count(), 1);
  await page.screenshot({ path: join(SHOTS, "passkey-enrol.png"), fullPage: true });
  await page.click("#register-passkey");
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  await backAtClient(page);

  // A new sign-in in the same context (the authenticator stays): the passkey as the
  // second factor, offered on the code page.
  await page.context().clearCookies();
  await page.goto(start);
  await page.fill("#username", USER_PK);
  await page.fill("#password", PASSWORD);
  await page.click("button[type=submit]");
  await page.locator("h2", { hasText: "Or use a passkey" }).waitFor();
  await page.click("#use-passkey");
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  await backAtClient(page);

  // Passwordless: the login page's "Sign in with a passkey", username first.
  await page.context().clearCookies();
  await page.goto(start);
  await page.fill("#username", USER_PK);
  await page.click("#passkey-start");
  await page.locator("h1", { hasText: "Sign in with a passkey" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "passkey-signin.png"), fullPage: true });
  await page.click("#use-passkey");
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  await backAtClient(page);

  // Without user verification the server refuses the device's answer, announced in
  // role=alert. The page asks for verification (required), so a device that cannot
  // verify fails in the browser before anything is posted; to make the server see an
  // assertion without the UV flag, the options are relaxed in the page (as a hostile or
  // broken client could) and the device answers without verifying.
  await cdp.send("WebAuthn.setUserVerified", { authenticatorId, isUserVerified: false });
  await page.context().clearCookies();
  await page.goto(start);
  await page.fill("#username", USER_PK);
  await page.click("#passkey-start");
  await page.locator("h1", { hasText: "Sign in with a passkey" }).waitFor();
  await page.evaluate(() => {
    const form = document.querySelector('form[data-passkey="get"]');
    const options = JSON.parse(form.dataset.options);
    options.publicKey.userVerification = "discouraged";
    form.dataset.options = JSON.stringify(options);
  });
  const [refusal] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === "POST" && r.url().includes("/authorize")),
    page.click("#use-passkey"),
  ]);
  assert.equal(refusal.status(), 400, "the server saw the assertion and refused it");
  assert.match(refusal.request().postData() ?? "", /response=%7B/, "an assertion was posted");
  await page.locator("[role=alert]", { hasText: "The passkey was not accepted" }).waitFor();
});

await scenario("step-up: the API asks for a second factor, the app signs in again with it and retries", async (page) => {
  const STEP_UP_USER = env("STEP_UP_USER");
  // Signed in with the password alone.
  await toLogin(page);
  await typeCredentials(page, STEP_UP_USER, PASSWORD);
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForURL((u) => u.href.startsWith(SPA));
  await status(page).filter({ hasText: /^Signed in as u_/ }).waitFor();
  // The sensitive route refuses with the RFC 9470 challenge; the app follows it.
  const isDelete = (r) => r.url().endsWith("/notes/0") && r.request().method() === "DELETE";
  const challenged = page.waitForResponse(isDelete);
  await page.click("#delete");
  const first = await challenged;
  assert.equal(first.status(), 401);
  const challenge = first.headers()["www-authenticate"];
  assert.match(challenge, /error="insufficient_user_authentication"/);
  assert.match(challenge, /acr_values="urn:tessera:acr:mfa"/);
  assert.match(challenge, /max_age=300/);
  await page.waitForURL((u) => u.href.startsWith(ISSUER + "/authorize"));
  const asked = new URL(page.url()).searchParams;
  assert.equal(asked.get("acr_values"), "urn:tessera:acr:mfa");
  assert.equal(asked.get("max_age"), "300");
  assert.equal(asked.get("code_challenge_method"), "S256");
  // No factor yet: the password again (a session cookie alone never adds a factor),
  // then the enrolment, confirmed with a TOTP code.
  await page.locator("h1", { hasText: "Sign in" }).waitFor();
  await typeCredentials(page, STEP_UP_USER, PASSWORD);
  await page.locator("h1", { hasText: "Set up a second factor" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "step-up.png"), fullPage: true });
  const key = await page.inputValue("#secret");
  await page.fill("#code", totp(key, Date.now() / 1000));
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Your recovery codes" }).waitFor();
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  const retried = page.waitForResponse(isDelete);
  await page.keyboard.press("Enter");
  await page.waitForURL((u) => u.href.startsWith(SPA));
  assert.equal((await retried).status(), 204);
  await status(page).filter({ hasText: "API answered 204 to the delete." }).waitFor();
});

await scenario("an abandoned step-up leaves nothing pending: a later plain sign-in deletes nothing", async (page) => {
  const ABANDON_USER = env("ABANDON_USER");
  await toLogin(page);
  await typeCredentials(page, ABANDON_USER, PASSWORD);
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForURL((u) => u.href.startsWith(SPA));
  await status(page).filter({ hasText: /^Signed in as u_/ }).waitFor();
  await page.click("#add");
  await status(page).filter({ hasText: "API answered 201 to the new note." }).waitFor();
  // The delete is challenged and the app leaves for the step-up; the user abandons it.
  await page.click("#delete");
  await page.waitForURL((u) => u.href.startsWith(ISSUER + "/authorize"));
  assert.equal(new URL(page.url()).searchParams.get("acr_values"), "urn:tessera:acr:mfa");
  await page.locator("h1", { hasText: "Sign in" }).waitFor();
  await page.goto(SPA);
  await status(page).filter({ hasText: "Not signed in." }).waitFor();
  // Later (the server's session has ended meanwhile), a plain sign-in in which the user
  // sets up a second factor (its token would pass the delete): the app must not delete
  // anything by itself.
  await page.context().clearCookies();
  let deletes = 0;
  page.on("request", (r) => { if (r.method() === "DELETE") deletes += 1; });
  await page.click("#signin");
  await page.waitForURL((u) => u.href.startsWith(ISSUER + "/authorize"));
  assert.equal(new URL(page.url()).searchParams.get("acr_values"), null);
  await page.locator("h1", { hasText: "Sign in" }).waitFor();
  await page.fill("#username", ABANDON_USER);
  await page.fill("#password", PASSWORD);
  await page.check("#enrol");
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Set up a second factor" }).waitFor();
  const key = await page.inputValue("#secret");
  await page.fill("#code", totp(key, Date.now() / 1000));
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Your recovery codes" }).waitFor();
  await page.click("button[type=submit]");
  await page.locator("h1", { hasText: "Allow" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForURL((u) => u.href.startsWith(SPA));
  await status(page).filter({ hasText: /^Signed in as u_|API answered/ }).waitFor();
  await page.click("#list");
  await status(page).filter({ hasText: "API answered 200 with the notes." }).waitFor();
  const listed = JSON.parse(await page.locator("#out").textContent());
  assert.equal(deletes, 0, "no DELETE was sent");
  assert.equal(listed.notes.length, 1, "the note is still there");
});

await browser.close();
console.log(`screenshots: ${join(SHOTS, "login.png")} ${join(SHOTS, "consent.png")} ${join(SHOTS, "mfa-enrol.png")} ${join(SHOTS, "mfa-code.png")} ${join(SHOTS, "passkey-enrol.png")} ${join(SHOTS, "passkey-signin.png")} ${join(SHOTS, "step-up.png")}`);
process.exit(failed ? 1 : 0);
