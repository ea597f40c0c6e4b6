//! Random identifiers: client ids, user ids, grant ids (`sid`) and `jti`s.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

/// `N` bytes from the system's secure random generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Internal("system random generator failed".into()))?;
    Ok(bytes)
}

/// `prefix` followed by base64url of 16 random bytes (128 bits).
pub(crate) fn random_id(prefix: &str) -> Result<String, Error> {
    let bytes = random_bytes::<16>()?;
    let mut out = String::with_capacity(prefix.len() + 22);
    out.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = random_id("g_").unwrap();
        let b = random_id("g_").unwrap();
        assert!(a.starts_with("g_") && a.len() == 24);
        assert_ne!(a, b);
    }
}
