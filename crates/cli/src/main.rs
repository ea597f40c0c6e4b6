//! The `tessera` command-line tool. The authorization server (`tessera serve`) and the
//! operator commands arrive with the server issue; until then this says so plainly.

use std::process::ExitCode;

const NOT_YET: &str = "\
tessera: the authorization server is not built yet.

What exists today is the token core library, `tessera-token` (JWS/JWT, JWK, claims
validation, opaque tokens, RFC 6750 header parsing, PKCE). See README.md.";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version" | "-V") => {
            println!("tessera {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{NOT_YET}");
            ExitCode::from(2)
        }
    }
}
