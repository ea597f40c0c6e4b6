//! Second factors: TOTP (RFC 6238 through `totp-rs`: SHA-1, 6 digits, 30-second steps,
//! one step of clock skew either side, the parameters every authenticator app reads) and
//! recovery codes. Enrolment (a sealed secret, confirmed by a first code), and the check
//! of a code with replay refusal. The sign-in decision that uses the check, throttled
//! and audited, is [`crate::login::second_factor`].

use std::fmt;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use qrcode::QrCode;
use qrcode::render::svg;
use tessera_token::{TokenHash, UnixTime};
use totp_rs::{Algorithm, Secret, TOTP};
use zeroize::Zeroizing;

use crate::oauth::OAuthError;
use crate::state::Core;
use crate::store::{TotpRecord, UserRecord};

/// Digits of a code.
const DIGITS: usize = 6;
/// Seconds of a time step.
const STEP_SECS: u64 = 30;
/// Steps accepted either side of the current one (clock skew, a code typed late).
const SKEW: u8 = 1;
/// Bytes of a TOTP secret (160 bits, RFC 4226 section 4's recommendation for SHA-1).
const SECRET_LEN: usize = 20;
/// Recovery codes handed out at enrolment.
pub(crate) const RECOVERY_CODES: usize = 10;
/// Random bytes of a recovery code (80 bits, 16 base32 characters).
const RECOVERY_LEN: usize = 10;

/// What the enrolment page shows: the secret for manual entry, the `otpauth://` URI and
/// its QR code as an inline SVG. Never logged.
pub(crate) struct Enrolment {
    /// The secret in base32 (what authenticator apps accept typed in).
    pub(crate) secret: Zeroizing<String>,
    /// The QR code of the `otpauth://totp/...` URI, an `<svg>` element.
    pub(crate) qr_svg: Zeroizing<String>,
}

impl fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Enrolment(<redacted>)")
    }
}

/// The outcome of checking a second-factor code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checked {
    /// A current TOTP code, not used before.
    Totp,
    /// An unused recovery code, now used; `left` remain.
    Recovery {
        /// Unused recovery codes left.
        left: u32,
    },
    /// A TOTP code of a step already used (or an earlier one): a replay.
    Replayed,
    /// Neither a current code nor an unused recovery code (or no confirmed factor).
    Wrong,
}

/// The associated data a user's secret is sealed with: a sealed secret cannot be moved
/// onto another user.
fn aad(user_id: &str) -> String {
    format!("totp:{user_id}")
}

fn server_error(what: &str) -> impl Fn(crate::Error) -> OAuthError + '_ {
    move |e| OAuthError::Server(format!("{what}: {e}"))
}

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, OAuthError> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| OAuthError::Server("system random generator failed".into()))?;
    Ok(bytes)
}

/// The `issuer` label of the `otpauth` URI: the issuer's host (a label must not hold
/// `:`, so no port), or "Tessera".
fn issuer_label(issuer: &str) -> String {
    let host = issuer
        .split_once("://")
        .map_or(issuer, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    if host.is_empty() || host.starts_with('[') {
        "Tessera".to_owned()
    } else {
        host.to_owned()
    }
}

/// The generator for `secret`, labelled for `account` at `issuer`.
fn generator(secret: &[u8], issuer: &str, account: &str) -> TOTP {
    // Unchecked only for the labels (a `:` would be refused; it is replaced instead):
    // the digits and the 160-bit secret are this module's constants.
    TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW,
        STEP_SECS,
        secret.to_vec(),
        Some(issuer_label(issuer)),
        account.replace(':', "_"),
    )
}

/// The time step `code` is valid for at `now` (within the skew), if any; the latest
/// when several match.
fn matching_step(totp: &TOTP, code: &str, now: UnixTime) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now.secs().div_euclid(STEP_SECS as i64);
    let skew = i64::from(SKEW);
    let mut found = None;
    for step in current - skew..=current + skew {
        let Ok(at) = u64::try_from(step * STEP_SECS as i64) else {
            continue;
        };
        if verify_slices_are_equal(totp.generate(at).as_bytes(), code.as_bytes()).is_ok() {
            found = Some(step);
        }
    }
    found
}

/// Starts (or restarts) enrolment: a new secret, sealed, stored unconfirmed. `None` when
/// the user has a confirmed factor already (it must be reset first).
pub(crate) async fn begin(core: &Core, user: &UserRecord) -> Result<Option<Enrolment>, OAuthError> {
    let secret = random(SECRET_LEN)?;
    let sealed = core
        .factor_sealer
        .seal(&aad(&user.id), &secret)
        .map_err(server_error("sealing a TOTP secret"))?;
    let record = TotpRecord {
        user_id: user.id.clone(),
        sealed_secret: sealed,
        last_step: None,
        created_at: core.clock.now(),
        confirmed_at: None,
    };
    if !core.store.begin_totp(&record).await? {
        return Ok(None);
    }
    enrolment(core, user, &secret).map(Some)
}

/// The enrolment under way (unconfirmed), to show its page again; `None` for a user
/// with a factor (a passkey registered meanwhile): its secret is never shown again.
pub(crate) async fn under_way(
    core: &Core,
    user: &UserRecord,
) -> Result<Option<Enrolment>, OAuthError> {
    if !core.store.passkeys(&user.id).await?.is_empty() {
        return Ok(None);
    }
    match core.store.totp(&user.id).await? {
        Some(t) if t.confirmed_at.is_none() => {
            let secret = open(core, &t)?;
            enrolment(core, user, &secret).map(Some)
        }
        _ => Ok(None),
    }
}

fn open(core: &Core, t: &TotpRecord) -> Result<Zeroizing<Vec<u8>>, OAuthError> {
    core.factor_sealer
        .open(&aad(&t.user_id), &t.sealed_secret)
        .map_err(|_| {
            OAuthError::Server(
                "cannot open a TOTP secret: the master key is not the one it was sealed with"
                    .into(),
            )
        })
}

fn enrolment(core: &Core, user: &UserRecord, secret: &[u8]) -> Result<Enrolment, OAuthError> {
    let totp = generator(secret, &core.issuer, &user.name);
    let uri = Zeroizing::new(totp.get_url());
    let qr = QrCode::new(uri.as_bytes())
        .map_err(|e| OAuthError::Server(format!("QR code: {e}")))?
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    // Inline in the page: without the XML declaration the renderer starts with.
    let start = qr.find("<svg").unwrap_or(0);
    Ok(Enrolment {
        secret: Zeroizing::new(totp.get_secret_base32()),
        qr_svg: Zeroizing::new(qr[start..].to_owned()),
    })
}

/// True when the user has a confirmed factor, TOTP or passkey (then one is asked for at
/// every sign-in).
pub(crate) async fn enrolled(core: &Core, user_id: &str) -> Result<bool, OAuthError> {
    Ok(core
        .store
        .totp(user_id)
        .await?
        .is_some_and(|t| t.confirmed_at.is_some())
        || !core.store.passkeys(user_id).await?.is_empty())
}

/// Confirms the enrolment under way with its first `code`: the ten recovery codes (to
/// show once; only their hashes are kept), or `None` when the code is not current (or
/// nothing is under way).
pub(crate) async fn confirm(
    core: &Core,
    user_id: &str,
    code: &str,
) -> Result<Option<Vec<Zeroizing<String>>>, OAuthError> {
    let Some(t) = core.store.totp(user_id).await? else {
        return Ok(None);
    };
    if t.confirmed_at.is_some() {
        return Ok(None);
    }
    let secret = open(core, &t)?;
    let now = core.clock.now();
    let Some(step) = matching_step(&generator(&secret, "", ""), &normalise(code), now) else {
        return Ok(None);
    };
    let codes = (0..RECOVERY_CODES)
        .map(|_| recovery_code())
        .collect::<Result<Vec<_>, _>>()?;
    let hashes: Vec<TokenHash> = codes.iter().map(|c| recovery_hash(c)).collect();
    if !core
        .store
        .confirm_totp(user_id, &t.sealed_secret, step, &hashes, core.revoked_now())
        .await?
    {
        return Ok(None);
    }
    Ok(Some(codes))
}

/// Checks `code` for the user: a TOTP code of their confirmed factor (its step recorded,
/// so it is accepted once), else one of their unused recovery codes (marked used).
pub(crate) async fn check(core: &Core, user_id: &str, code: &str) -> Result<Checked, OAuthError> {
    let code = normalise(code);
    if code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        let Some(t) = core.store.totp(user_id).await? else {
            return Ok(Checked::Wrong);
        };
        if t.confirmed_at.is_none() {
            return Ok(Checked::Wrong);
        }
        let secret = open(core, &t)?;
        let Some(step) = matching_step(&generator(&secret, "", ""), &code, core.clock.now()) else {
            return Ok(Checked::Wrong);
        };
        return Ok(if core.store.use_totp_step(user_id, step).await? {
            Checked::Totp
        } else {
            Checked::Replayed
        });
    }
    if !enrolled(core, user_id).await? {
        return Ok(Checked::Wrong);
    }
    let hash = recovery_hash(&code);
    if core
        .store
        .use_recovery_code(user_id, &hash, core.clock.now())
        .await?
    {
        let left = core.store.recovery_codes_left(user_id).await?;
        return Ok(Checked::Recovery { left });
    }
    Ok(Checked::Wrong)
}

/// A code as typed: without spaces and dashes, lower case.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// A new recovery code: 80 random bits as 16 base32 characters in groups of four.
fn recovery_code() -> Result<Zeroizing<String>, OAuthError> {
    let bytes = random(RECOVERY_LEN)?;
    let encoded = Secret::Raw(bytes.to_vec()).to_encoded();
    let Secret::Encoded(plain) = &encoded else {
        return Err(OAuthError::Server("base32 encoding failed".into()));
    };
    let plain = Zeroizing::new(plain.to_lowercase());
    let grouped = plain
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    Ok(Zeroizing::new(grouped))
}

/// What is stored of a recovery code: the SHA-256 of its normalised form (80 random bits:
/// no dictionary to run against the hash).
fn recovery_hash(code: &str) -> TokenHash {
    TokenHash::of(normalise(code).as_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::testing::{START, core};

    async fn alice(core: &Core) -> UserRecord {
        let user = UserRecord {
            id: "u_alice".into(),
            name: "alice".into(),
            password_hash: "$argon2id$unused".into(),
            disabled: false,
            created_at: core.clock.now(),
            generation: 0,
        };
        core.store.insert_user(&user).await.unwrap();
        user
    }

    /// The code an authenticator app shows at `at` for the enrolment's secret.
    fn code_at(e: &Enrolment, at: i64) -> String {
        let secret = Secret::Encoded(e.secret.to_string()).to_bytes().unwrap();
        generator(&secret, "", "").generate(u64::try_from(at).unwrap())
    }

    /// Enrols alice and returns her enrolment and recovery codes; the clock is then one
    /// step later than the confirming code.
    async fn enrolled_alice(
        core: &Core,
        clock: &tessera_token::ManualClock,
    ) -> (UserRecord, Enrolment, Vec<Zeroizing<String>>) {
        let user = alice(core).await;
        let e = begin(core, &user).await.unwrap().unwrap();
        let codes = confirm(core, &user.id, &code_at(&e, START))
            .await
            .unwrap()
            .unwrap();
        clock.advance(std::time::Duration::from_secs(STEP_SECS));
        (user, e, codes)
    }

    #[tokio::test]
    async fn enrolment_is_confirmed_by_a_current_code_only() {
        let (core, _dir, _clock) = core().await;
        let user = alice(&core).await;
        let e = begin(&core, &user).await.unwrap().unwrap();
        assert!(e.qr_svg.starts_with("<svg"), "an inline SVG element");
        assert_eq!(e.secret.len(), 32, "160 bits in base32");
        assert!(
            !enrolled(&core, &user.id).await.unwrap(),
            "not before the first code"
        );
        let stale = code_at(&e, START - 10 * STEP_SECS as i64);
        assert!(confirm(&core, &user.id, &stale).await.unwrap().is_none());
        // The page shown again shows the same secret.
        let again = under_way(&core, &user).await.unwrap().unwrap();
        assert_eq!(*again.secret, *e.secret);
        let codes = confirm(&core, &user.id, &code_at(&e, START))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(enrolled(&core, &user.id).await.unwrap());
        assert!(
            begin(&core, &user).await.unwrap().is_none(),
            "no second enrolment over a confirmed one"
        );
        // The stored secret is sealed: the base32 key is nowhere in the row.
        let row = core.store.totp(&user.id).await.unwrap().unwrap();
        let raw = Secret::Encoded(e.secret.to_string()).to_bytes().unwrap();
        assert!(
            !row.sealed_secret
                .windows(raw.len())
                .any(|w| w == raw.as_slice())
        );
    }

    #[tokio::test]
    async fn a_code_is_accepted_within_one_step_and_only_once() {
        let (core, _dir, clock) = core().await;
        let (user, e, _) = enrolled_alice(&core, &clock).await;
        let now = core.clock.now().secs();
        // The confirming code's step is used up already.
        assert_eq!(
            check(&core, &user.id, &code_at(&e, START)).await.unwrap(),
            Checked::Replayed
        );
        let previous = code_at(&e, now - STEP_SECS as i64);
        assert_eq!(
            previous,
            code_at(&e, START),
            "one step back is the confirming step"
        );
        let current = code_at(&e, now);
        assert_eq!(
            check(&core, &user.id, &current).await.unwrap(),
            Checked::Totp
        );
        assert_eq!(
            check(&core, &user.id, &current).await.unwrap(),
            Checked::Replayed
        );
        // The next step's code (a clock a little ahead) is accepted once as well, and
        // after it no earlier one.
        let next = code_at(&e, now + STEP_SECS as i64);
        assert_eq!(check(&core, &user.id, &next).await.unwrap(), Checked::Totp);
        // Two steps ahead is outside the skew.
        let far = code_at(&e, now + 3 * STEP_SECS as i64);
        assert_eq!(check(&core, &user.id, &far).await.unwrap(), Checked::Wrong);
        assert_eq!(
            check(&core, &user.id, "12345").await.unwrap(),
            Checked::Wrong
        );
        assert_eq!(
            check(&core, &user.id, "abcdef").await.unwrap(),
            Checked::Wrong
        );
    }

    #[tokio::test]
    async fn a_recovery_code_works_once_and_only_for_its_user() {
        let (core, _dir, clock) = core().await;
        let (user, _, codes) = enrolled_alice(&core, &clock).await;
        let code = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(
            check(&core, &user.id, &code).await.unwrap(),
            Checked::Recovery { left: 9 },
            "typed in capitals with spaces: the same code"
        );
        assert_eq!(
            check(&core, &user.id, &codes[3]).await.unwrap(),
            Checked::Wrong
        );
        assert_eq!(
            check(&core, "u_bob", &codes[4]).await.unwrap(),
            Checked::Wrong
        );
        assert_eq!(
            check(&core, &user.id, &codes[4]).await.unwrap(),
            Checked::Recovery { left: 8 }
        );
    }

    /// Two submissions of one code at the same moment: exactly one is accepted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_submissions_of_one_code_have_one_winner() {
        let (core, _dir, clock) = core().await;
        let (user, e, codes) = enrolled_alice(&core, &clock).await;
        let core = Arc::new(core);
        let current = code_at(&e, core.clock.now().secs());
        for code in [current, codes[0].to_string()] {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (core, id, code) = (Arc::clone(&core), user.id.clone(), code.clone());
                    tokio::spawn(async move { check(&core, &id, &code).await.unwrap() })
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                if matches!(t.await.unwrap(), Checked::Totp | Checked::Recovery { .. }) {
                    wins += 1;
                }
            }
            assert_eq!(wins, 1, "exactly one of eight concurrent submissions wins");
        }
    }

    #[test]
    fn the_otpauth_issuer_label_never_holds_a_colon() {
        assert_eq!(
            issuer_label("https://id.example.com:8443/x"),
            "id.example.com"
        );
        assert_eq!(issuer_label("http://[::1]:8080"), "Tessera");
        assert_eq!(normalise(" AbCd-eFgH 2345 "), "abcdefgh2345");
    }
}
