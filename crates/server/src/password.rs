//! Password hashing: Argon2id with the argon2 crate's defaults (the OWASP parameters),
//! always off the async runtime on `spawn_blocking` and behind a semaphore, so a login
//! storm cannot starve other requests. Unknown users are checked against a dummy hash so
//! they cost the same time as a wrong password.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tessera_token::SecretString;
use tokio::sync::Semaphore;

use crate::Error;

/// Shortest password accepted by `tessera user add` / `user passwd`.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bytes); longer input is refused before hashing.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// The bounded Argon2id pool.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
}

impl Passwords {
    /// A pool running at most `concurrency` hashes at once. Computes the dummy hash
    /// (one Argon2id run), so call it once at start-up.
    pub async fn new(concurrency: usize) -> Result<Self, Error> {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let dummy = run_blocking(|| hash_now("tessera dummy password for timing")).await??;
        Ok(Passwords {
            permits,
            dummy: dummy.into(),
        })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        check_policy(password.expose())?;
        let _permit = self.permit().await?;
        run_blocking(move || hash_now(password.expose())).await?
    }

    /// True when `password` matches `phc`; with no hash (unknown user) checks against the
    /// dummy and returns false, taking the same time.
    pub async fn verify(&self, password: SecretString, phc: Option<String>) -> Result<bool, Error> {
        if password.expose().len() > MAX_PASSWORD_LEN {
            return Ok(false);
        }
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.to_string());
        let _permit = self.permit().await?;
        let ok = run_blocking(move || {
            Argon2::default()
                .verify_password(password.expose().as_bytes(), phc.as_str())
                .is_ok()
        })
        .await?;
        Ok(ok && known)
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Error> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("password pool closed".into()))
    }
}

/// Refuses passwords that are too short or too long.
pub fn check_policy(password: &str) -> Result<(), Error> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Error::Invalid(format!(
            "password must be at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// Hashes one new password off the async runtime, without a pool (operator commands).
pub async fn hash_one(password: SecretString) -> Result<String, Error> {
    check_policy(password.expose())?;
    run_blocking(move || hash_now(password.expose())).await?
}

fn hash_now(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| Error::Internal("password hashing task failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_and_dummy() {
        let p = Passwords::new(2).await.unwrap();
        let h = p.hash(SecretString::new("correct horse")).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            p.verify(SecretString::new("correct horse"), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(
            !p.verify(SecretString::new("wrong horse!"), Some(h))
                .await
                .unwrap()
        );
        assert!(
            !p.verify(SecretString::new("tessera dummy password for timing"), None)
                .await
                .unwrap()
        );
        assert!(p.hash(SecretString::new("short")).await.is_err());
    }
}
