//! The guard's memory per revoked entry, measured as the growth of this process's
//! resident set while 100,000 entries go in (its own test binary, one test, the ids made
//! beforehand): at most 64 bytes an entry (issue 18). Prints the figure for
//! docs/benchmarks.md. Linux only (`/proc/self/statm`).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

use tessera_guard::RevocationList;
use tessera_token::UnixTime;

const ENTRIES: usize = 100_000;

/// Resident bytes of this process.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_revoked_entry_costs_at_most_64_bytes_at_100000_entries() {
    // Ids shaped like the server's: UUID jtis and `g_`-prefixed grant sids.
    let jtis: Vec<String> = (0..ENTRIES / 2)
        .map(|i| format!("{i:08x}-0f6c-4d7e-9a1b-{:012x}", i * 7919))
        .collect();
    let sids: Vec<String> = (0..ENTRIES / 2).map(|i| format!("g_{i:032x}")).collect();
    let exp = UnixTime::from_secs(1_800_000_600);
    let before = resident();
    let list = RevocationList::new();
    for (j, s) in jtis.iter().zip(&sids) {
        list.revoke_jti(j, exp);
        list.revoke_sid(s, exp);
    }
    let held = resident().saturating_sub(before);
    assert_eq!(list.len(), ENTRIES);
    let per_entry = held as f64 / ENTRIES as f64;
    println!(
        "revocation list: resident set grew {held} bytes for {ENTRIES} entries = {per_entry:.1} bytes/entry"
    );
    assert!(per_entry <= 64.0, "{per_entry:.1} bytes per entry");
}
