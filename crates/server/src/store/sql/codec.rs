//! How record fields are written to and read from columns, the same for every backend:
//! lists as space-separated text, hashes as 32 bytes, times as Unix seconds.

use tessera_token::{Scope, TokenHash, UnixTime};

use crate::store::StoreError;

/// A list as one space-separated column.
pub(super) fn join<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A space-separated column as a list.
pub(super) fn split(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stored scope (empty for none).
pub(super) fn scope_from_db(s: &str) -> Result<Scope, StoreError> {
    if s.is_empty() {
        return Ok(Scope::default());
    }
    s.parse()
        .map_err(|_| StoreError::Backend("stored scope is malformed".into()))
}

/// A stored SHA-256 hash.
pub(super) fn hash_from_db(bytes: Vec<u8>) -> Result<TokenHash, StoreError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Backend("stored hash is not 32 bytes".into()))?;
    Ok(TokenHash::from_bytes(arr))
}

/// A stored time.
pub(super) fn time(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}
