//! The master key and what is derived from it: the key-encryption key that seals private
//! signing keys at rest (AES-256-GCM from aws-lc-rs) and the HMAC key that derives
//! refresh-token successors.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::Error;

/// Environment variable holding the master key (base64url of 32 bytes).
pub const MASTER_KEY_ENV: &str = "TESSERA_MASTER_KEY";
/// File in the data directory holding the master key when the variable is not set.
pub const MASTER_KEY_FILE: &str = "master.key";

/// The 32-byte master key. `Debug` is redacted; zeroized on drop.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Where a master key came from, for messages (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `TESSERA_MASTER_KEY` environment variable.
    Env,
    /// An existing `master.key` file.
    File(PathBuf),
    /// A `master.key` file created just now.
    Created(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "{MASTER_KEY_ENV}"),
            KeySource::File(p) | KeySource::Created(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The outcome of looking for the master key without creating one.
#[derive(Debug)]
pub enum Located {
    /// Found, and where.
    Found(MasterKey, KeySource),
    /// `TESSERA_MASTER_KEY` is unset and this file does not exist.
    Missing(PathBuf),
}

impl MasterKey {
    /// The key from `TESSERA_MASTER_KEY` if set, else from `DIR/master.key`, which is
    /// created (mode 0600) with a random key when absent. For tests and benches: the
    /// server and the CLI go through `keys::unlock`, which checks the key
    /// against the store and creates a file only for a store that has no key yet.
    pub fn load(data_dir: &Path) -> Result<Self, Error> {
        match Self::locate(data_dir)? {
            Located::Found(key, _) => Ok(key),
            Located::Missing(path) => Self::create(&path),
        }
    }

    /// The key from `TESSERA_MASTER_KEY` if set, else from `DIR/master.key` if it exists.
    pub fn locate(data_dir: &Path) -> Result<Located, Error> {
        Self::locate_from(std::env::var(MASTER_KEY_ENV).ok(), data_dir)
    }

    /// [`MasterKey::locate`] with `env` as the value of `TESSERA_MASTER_KEY` (tests pass
    /// `None`, whatever the environment of the test run holds).
    pub(crate) fn locate_from(env: Option<String>, data_dir: &Path) -> Result<Located, Error> {
        if let Some(v) = env {
            let v = Zeroizing::new(v);
            let key = Self::decode(v.trim()).map_err(|m| {
                Error::MasterKey(format!(
                    "{MASTER_KEY_ENV} {m}; generate one with `head -c32 /dev/urandom | basenc --base64url`"
                ))
            })?;
            return Ok(Located::Found(key, KeySource::Env));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Located::Missing(path)),
            _ => Ok(Located::Found(
                Self::from_file(&path)?,
                KeySource::File(path),
            )),
        }
    }

    /// Creates `path` (mode 0600) holding a new random key; when another process
    /// created it first, reads theirs.
    pub fn create_file(path: &Path) -> Result<(Self, KeySource), Error> {
        Ok((Self::create(path)?, KeySource::Created(path.to_owned())))
    }

    /// The key-check value stored in the database: HMAC-SHA-256 of a fixed label under
    /// the master key. It tells whether two keys are the same and nothing about the key.
    pub fn check_value(&self) -> Zeroizing<[u8; 32]> {
        self.derive(b"tessera/v1/master-key-check")
    }

    /// Whether `stored` is this key's check value (compared in constant time).
    pub fn matches_check(&self, stored: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.check_value()[..], stored).is_ok()
    }

    fn decode(s: &str) -> Result<Self, &'static str> {
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| "is not base64url")?,
        );
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes")?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    fn from_file(path: &Path) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path)?;
                let text = Zeroizing::new(text);
                Self::decode(text.trim()).map_err(|m| {
                    Error::MasterKey(format!(
                        "{} {m}; restore it from backup or set {MASTER_KEY_ENV}",
                        path.display()
                    ))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(Error::MasterKey(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn create(path: &Path) -> Result<Self, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| Error::Internal("system random generator failed".into()))?;
        let text = Zeroizing::new(format!("{}\n", URL_SAFE_NO_PAD.encode(&key[..])));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| {
                        Error::MasterKey(format!("cannot write {}: {e}", path.display()))
                    })?;
                Ok(MasterKey(key))
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
            Err(e) => Err(Error::MasterKey(format!(
                "cannot create {}: {e}",
                path.display()
            ))),
        }
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0[..]), label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The key-encryption key for private signing keys.
    pub fn sealer(&self) -> Result<Sealer, Error> {
        let kek = self.derive(b"tessera/v1/key-encryption");
        let key = UnboundKey::new(&AES_256_GCM, &kek[..])
            .map_err(|_| Error::Internal("AES-256-GCM key setup failed".into()))?;
        Ok(Sealer(LessSafeKey::new(key)))
    }

    /// The HMAC key that derives a refresh token's successor from its hash.
    pub fn refresh_key(&self) -> hmac::Key {
        hmac::Key::new(
            hmac::HMAC_SHA256,
            &self.derive(b"tessera/v1/refresh-successor")[..],
        )
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| Error::MasterKey(format!("cannot stat {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::MasterKey(format!(
            "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), Error> {
    Ok(())
}

/// Seals and opens private keys with AES-256-GCM; the key id is the associated data, so a
/// sealed key cannot be swapped onto another id.
pub struct Sealer(LessSafeKey);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A sealer under a key derived from `key` (itself derived from the master key) with
    /// its own `label`: second-factor secrets are sealed under one, never the signing
    /// keys' key-encryption key.
    pub(crate) fn derived(key: &hmac::Key, label: &[u8]) -> Result<Self, Error> {
        let tag = hmac::sign(key, label);
        let key = UnboundKey::new(&AES_256_GCM, tag.as_ref())
            .map_err(|_| Error::Internal("AES-256-GCM key setup failed".into()))?;
        Ok(Sealer(LessSafeKey::new(key)))
    }

    /// `nonce || ciphertext || tag` of `plaintext`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::Internal("system random generator failed".into()))?;
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .map_err(|_| Error::Key("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        buf.fill(0);
        Ok(out)
    }

    /// The plaintext of a sealed key, or an error naming the likely cause.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let wrong = || {
            Error::MasterKey(format!(
                "cannot decrypt signing key {kid}: the master key is not the one it was sealed with \
                 (check {MASTER_KEY_ENV} or DATA_DIR/{MASTER_KEY_FILE})"
            ))
        };
        if sealed.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = self
            .0
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut buf)
            .map_err(|_| wrong())?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = MasterKey::from_file(&dir.path().join(MASTER_KEY_FILE)).unwrap();
        let b = MasterKey::from_file(&dir.path().join(MASTER_KEY_FILE)).unwrap();
        assert_eq!(a.0[..], b.0[..]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(dir.path().join(MASTER_KEY_FILE)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(format!("{a:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn seal_round_trip_binds_kid() {
        let key = MasterKey::decode(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
        let sealer = key.sealer().unwrap();
        let sealed = sealer.seal("k1", b"private").unwrap();
        assert_eq!(&sealer.open("k1", &sealed).unwrap()[..], b"private");
        assert!(sealer.open("k2", &sealed).is_err());
        let other = MasterKey::decode(&URL_SAFE_NO_PAD.encode([8u8; 32])).unwrap();
        assert!(other.sealer().unwrap().open("k1", &sealed).is_err());
        assert!(MasterKey::decode("short").is_err());
    }

    #[test]
    fn the_check_value_tells_keys_apart_and_is_not_the_key() {
        let a = MasterKey::decode(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
        let a2 = MasterKey::decode(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
        let b = MasterKey::decode(&URL_SAFE_NO_PAD.encode([8u8; 32])).unwrap();
        assert!(a.matches_check(&a2.check_value()[..]));
        assert!(!a.matches_check(&b.check_value()[..]));
        assert!(!a.matches_check(&a.check_value()[..31]));
        assert_ne!(a.check_value()[..], a.0[..]);
        // Not any other derived key either.
        assert_ne!(
            a.check_value()[..],
            a.derive(b"tessera/v1/key-encryption")[..]
        );
    }

    #[test]
    fn locate_never_creates_a_file() {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var_os(MASTER_KEY_ENV).is_some() {
            return;
        }
        assert!(matches!(
            MasterKey::locate(dir.path()).unwrap(),
            Located::Missing(_)
        ));
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
    }
}
