//! `tessera init`: create a deployment's data directory, database and master key, and say
//! where they are. The only command besides `serve` that creates anything: the others
//! refuse a missing data directory (issue 14, item 11).

use tessera_server::Overrides;
use tessera_server::admin::Admin;
use tessera_server::secrets::KeySource;

use crate::cmd::Global;
use crate::exit::CliError;

pub(crate) async fn run(global: &Global) -> Result<(), CliError> {
    let config = global.config(Overrides::default())?;
    let admin = Admin::init(&config).await?;
    let dir = std::path::absolute(&config.store.data_dir)
        .unwrap_or_else(|_| config.store.data_dir.clone());
    match &config.store.database {
        None => {
            println!("data directory {}", dir.display());
            println!(
                "database       {}",
                dir.join(tessera_server::store::sqlite::DB_FILE).display()
            );
        }
        Some(url) => {
            if dir.is_dir() {
                println!("data directory {}", dir.display());
            }
            println!("database       {url}");
        }
    }
    match admin.master_key_source() {
        KeySource::Created(path) => println!(
            "master key     {} (created; back it up with the database: without it the signing keys cannot be opened)",
            path.display()
        ),
        KeySource::File(path) => println!("master key     {} (existing)", path.display()),
        KeySource::Env => println!("master key     from TESSERA_MASTER_KEY (matches the database)"),
    }
    admin.store().close().await;
    Ok(())
}
