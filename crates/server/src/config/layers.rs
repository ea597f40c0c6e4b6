//! Layering the optional TOML file, `TESSERA_*` environment variables and `--set KEY=VALUE`
//! flags into one [`FileConfig`], naming the key (and where it came from) in every error.

use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::{Table, Value};

use super::{FileConfig, Problems};
use crate::Error;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    File(String),
    Env(String),
    Flag,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::File(path) => format!("in {path}"),
            Source::Env(var) => format!("from {var}"),
            Source::Flag => "from --set".to_owned(),
        }
    }
}

/// Every key [`FileConfig`] accepts, in declaration order (read from its `Deserialize`
/// implementation, so a new field is never forgotten here).
pub fn fields() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    let _ = FileConfig::deserialize(FieldProbe(&mut names));
    names
}

/// The environment variable of a key: `TESSERA_` + the key in upper case. `database` is
/// `TESSERA_DATABASE_URL`, the name libpq users expect.
pub fn env_var(key: &str) -> String {
    match key {
        "database" => "TESSERA_DATABASE_URL".to_owned(),
        _ => format!("TESSERA_{}", key.to_ascii_uppercase()),
    }
}

/// `TESSERA_*` variables read besides the configuration keys: by the `tessera` binary,
/// by the example resource server (examples/resource_server.rs, which the README runs in
/// the same shell) and by the test suites.
pub(super) const OTHER_ENV_VARS: [&str; 14] = [
    "TESSERA_MASTER_KEY",
    "TESSERA_LOG",
    "TESSERA_LOG_FORMAT",
    "TESSERA_CONFIG",
    "TESSERA_AUDIENCE",
    "TESSERA_CACHE_CAPACITY",
    "TESSERA_FEED_CLIENT_ID",
    "TESSERA_FEED_CLIENT_SECRET",
    "TESSERA_INTROSPECTION_CLIENT_ID",
    "TESSERA_INTROSPECTION_CLIENT_SECRET",
    "TESSERA_SPA_CLIENT_ID",
    "TESSERA_SPA_COOKIE_CLIENT_ID",
    "TESSERA_TEST_DATABASE_URL",
    "TESSERA_TEST_PYTHON",
];

/// One warning line per `TESSERA_*` variable in `names` that no key (nor
/// `OTHER_ENV_VARS`) reads, with the closest known name when there is one: a typo in an
/// environment variable would otherwise fall back to the default without a word.
pub fn unknown_env_vars(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let known: Vec<String> = fields()
        .iter()
        .map(|f| env_var(f))
        .chain(OTHER_ENV_VARS.iter().map(|v| (*v).to_owned()))
        .collect();
    let mut out: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with("TESSERA_") && !known.contains(n))
        .map(|n| {
            let closest = known
                .iter()
                .map(|k| (edit_distance(&n, k), k))
                .min()
                .filter(|(d, _)| *d <= 3)
                .map(|(_, k)| format!("did you mean `{k}`? "))
                .unwrap_or_default();
            format!(
                "config: unknown environment variable `{n}` (ignored); {closest}`tessera config example` lists every key"
            )
        })
        .collect();
    out.sort();
    out
}

/// The one-line hint every configuration error ends with.
pub(crate) fn where_to_set(key: &str) -> String {
    format!(
        "set it in the config file, {} or --set {key}=VALUE (`tessera config example` documents every key)",
        env_var(key)
    )
}

/// Reads the file (if any), then applies environment variables (looked up with `env`),
/// then `--set KEY=VALUE` assignments; later layers win. Unknown keys and values of the
/// wrong type are errors naming the key, one line each, all of them.
pub fn layer(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    sets: &[String],
) -> Result<FileConfig, Error> {
    let mut problems = Problems::default();
    let file = layer_into(path, env, sets, &mut problems)?;
    problems.finish().map(|()| file)
}

/// [`layer`]'s work: a bad key or value is recorded in `problems` and left out, so the
/// rest can still be checked. `Err` only when there is nothing to check (the file cannot
/// be read or is not TOML).
pub(crate) fn layer_into(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    sets: &[String],
    problems: &mut Problems,
) -> Result<FileConfig, Error> {
    let mut table = Table::new();
    let mut sources: Vec<(String, Source)> = Vec::new();
    if let Some(path) = path {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("config: cannot read {shown}: {e}")))?;
        let file: Table = toml::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "config: {shown} is not valid TOML: {}",
                one_line(e.message())
            ))
        })?;
        for (key, mut value) in file {
            if problems.take(known(&key, &format!("in {shown}"))).is_none() {
                continue;
            }
            relative_to_file(&key, &mut value, path, problems);
            sources.push((key.clone(), Source::File(shown.clone())));
            table.insert(key, value);
        }
    }
    for key in fields() {
        let var = env_var(key);
        if let Some(raw) = env(&var) {
            table.insert((*key).to_owned(), typed_value(key, &raw));
            sources.push(((*key).to_owned(), Source::Env(var)));
        }
    }
    for set in sets {
        let Some((key, raw)) = set.split_once('=') else {
            problems.push(Error::Config(format!(
                "config: --set {set:?} is not KEY=VALUE; e.g. --set access_token_ttl_secs=900"
            )));
            continue;
        };
        let key = key.trim();
        if problems.take(known(key, "in --set")).is_none() {
            continue;
        }
        table.insert(key.to_owned(), typed_value(key, raw.trim()));
        sources.push((key.to_owned(), Source::Flag));
    }
    let mut bad = Vec::new();
    for (key, value) in &table {
        if let Err(e) = single(key, value.clone()) {
            let source = sources
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, s)| s.describe())
                .unwrap_or_default();
            problems.push(Error::Config(format!(
                "config: {key} = {} ({source}) is invalid: {}; {}",
                show(value),
                one_line(&e.to_string()),
                where_to_set(key)
            )));
            bad.push(key.clone());
        }
    }
    for key in bad {
        table.remove(&key);
    }
    Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Error::Config(format!("config: {}", one_line(e.message()))))
}

/// A relative path in a config file (`data_dir`, `tls_cert`, `tls_key`,
/// `metrics_token_file`) names a path next to the file, wherever the command runs from
/// (relative values from the environment and `--set` stay relative to the working
/// directory, like any command-line path). Before, file paths were relative to the
/// working directory: when the new path does not exist but the old one does (for
/// `data_dir`: holds a database or master key), the value is ambiguous and refused with
/// both paths, instead of silently starting a new, empty deployment.
fn relative_to_file(key: &str, value: &mut Value, file: &Path, problems: &mut Problems) {
    if !matches!(
        key,
        "data_dir" | "tls_cert" | "tls_key" | "metrics_token_file"
    ) {
        return;
    }
    let Value::String(raw) = value else { return };
    let old = Path::new(raw.as_str());
    let Some(base) = file.parent().filter(|b| !b.as_os_str().is_empty()) else {
        return;
    };
    if old.is_absolute() {
        return;
    }
    let new = base.join(old);
    let old_in_use = if key == "data_dir" {
        old.join(crate::store::sqlite::DB_FILE).exists()
            || old.join(crate::secrets::MASTER_KEY_FILE).exists()
    } else {
        old.exists()
    };
    if old_in_use && !new.exists() {
        let shown = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_owned())
                .display()
                .to_string()
        };
        let held = if key == "data_dir" {
            "holds a Tessera database or master key"
        } else {
            "exists"
        };
        problems.push(Error::Config(format!(
            "config: {key} = {raw:?} in {} is relative, so it names {} (next to the config \
             file), which does not exist; {} (relative to the working directory, where older \
             versions looked) {held}; set {key} to the absolute path you mean (see the \
             upgrade note in docs/operations.md)",
            file.display(),
            shown(&new),
            shown(old),
        )));
    }
    *raw = new.to_string_lossy().into_owned();
}

/// Refuses a key [`FileConfig`] does not have, suggesting the closest one.
fn known(key: &str, place: &str) -> Result<(), Error> {
    if fields().contains(&key) {
        return Ok(());
    }
    let closest = fields()
        .iter()
        .map(|f| (edit_distance(key, f), *f))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, f)| format!("did you mean `{f}`? "))
        .unwrap_or_default();
    Err(Error::Config(format!(
        "config: unknown key `{key}` {place}; {closest}`tessera config example` lists every key"
    )))
}

/// Deserializes a table holding only `key`, to check that one value.
fn single(key: &str, value: Value) -> Result<FileConfig, toml::de::Error> {
    let mut t = Table::new();
    t.insert(key.to_owned(), value);
    Value::Table(t).try_into()
}

/// A value given as text (environment, `--set`): a TOML literal when it is one of the
/// right type (`600`, `true`, `["a", "b"]`), else the text as a string, else a
/// comma-separated list of strings.
fn typed_value(key: &str, raw: &str) -> Value {
    let literal = toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    let candidates = [
        literal,
        Some(Value::String(raw.to_owned())),
        Some(Value::Array(
            raw.split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
    ];
    let mut first = None;
    for v in candidates.into_iter().flatten() {
        if single(key, v.clone()).is_ok() {
            return v;
        }
        first.get_or_insert(v);
    }
    first.unwrap_or_else(|| Value::String(raw.to_owned()))
}

/// A value as it would be written in TOML, for messages.
pub(super) fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Datetime(d) => d.to_string(),
        Value::Table(_) => "{...}".to_owned(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A deserializer that only records the field names a struct asks for.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("probe only"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_the_struct() {
        assert!(fields().contains(&"access_token_ttl_secs"));
        assert!(fields().contains(&"trusted_proxies"));
        assert_eq!(env_var("listen"), "TESSERA_LISTEN");
        assert_eq!(env_var("database"), "TESSERA_DATABASE_URL");
    }

    #[test]
    fn text_values_take_the_field_type() {
        assert_eq!(
            typed_value("access_token_ttl_secs", "900"),
            Value::Integer(900)
        );
        assert_eq!(
            typed_value("issuer", "https://a.example"),
            Value::String("https://a.example".into())
        );
        assert_eq!(
            typed_value("signing_alg", "ES256"),
            Value::String("ES256".into())
        );
        assert_eq!(
            typed_value(
                "cors_allowed_origins",
                "https://a.example, https://b.example"
            ),
            Value::Array(vec![
                Value::String("https://a.example".into()),
                Value::String("https://b.example".into())
            ])
        );
        assert_eq!(
            typed_value("dangerous_allow_http", "true"),
            Value::Boolean(true)
        );
    }

    /// Issue 14, item 11: `data_dir = "data"` in /etc/tessera/tessera.toml is
    /// /etc/tessera/data from any working directory; absolute paths and the other layers
    /// are left alone.
    #[test]
    fn a_relative_data_dir_in_a_file_is_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "data_dir = \"data\"\n").unwrap();
        let f = layer(Some(&path), &|_| None, &[]).unwrap();
        assert_eq!(f.data_dir.unwrap(), dir.path().join("data"));
        std::fs::write(&path, "data_dir = \"/srv/tessera\"\n").unwrap();
        let f = layer(Some(&path), &|_| None, &[]).unwrap();
        assert_eq!(f.data_dir.unwrap(), Path::new("/srv/tessera"));
        let f = layer(Some(&path), &|_| None, &["data_dir=here".to_owned()]).unwrap();
        assert_eq!(f.data_dir.unwrap(), Path::new("here"));
    }

    /// Review of item 11: a relative tls_cert in a file used to stay relative to the
    /// working directory; now it is next to the file, and a value that only the old rule
    /// finds is refused naming both paths. (`Cargo.toml` exists in the working directory
    /// of this test, the crate's directory, and not in the temporary one.)
    #[test]
    fn an_old_working_directory_path_is_refused_with_both_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, "tls_key = \"key.pem\"\n").unwrap();
        let f = layer(Some(&path), &|_| None, &[]).unwrap();
        assert_eq!(f.tls_key.unwrap(), dir.path().join("key.pem"));
        assert!(Path::new("Cargo.toml").exists());
        std::fs::write(&path, "tls_cert = \"Cargo.toml\"\n").unwrap();
        let e = layer(Some(&path), &|_| None, &[]).unwrap_err().to_string();
        assert!(
            e.contains(&dir.path().join("Cargo.toml").display().to_string()),
            "{e}"
        );
        let old = std::path::absolute("Cargo.toml").unwrap();
        assert!(e.contains(&old.display().to_string()), "{e}");
        // Both exist: the file's directory wins, without a word.
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        let f = layer(Some(&path), &|_| None, &[]).unwrap();
        assert_eq!(f.tls_cert.unwrap(), dir.path().join("Cargo.toml"));
    }

    /// Issue 14, item 14: a misspelt variable used to be ignored without a word.
    #[test]
    fn unknown_tessera_variables_are_named_with_a_suggestion() {
        let names = [
            "TESSERA_ACESS_TOKEN_TTL_SECS",
            "TESSERA_ACCESS_TOKEN_TTL_SECS",
            "TESSERA_MASTER_KEY",
            "TESSERA_LOG",
            "TESSERA_DATABASE_URL",
            "TESSERA_WHATEVER_ELSE_ENTIRELY",
            "PATH",
            // The README's example resource server and the test suites read these.
            "TESSERA_AUDIENCE",
            "TESSERA_FEED_CLIENT_ID",
            "TESSERA_FEED_CLIENT_SECRET",
            "TESSERA_CACHE_CAPACITY",
            "TESSERA_INTROSPECTION_CLIENT_ID",
            "TESSERA_INTROSPECTION_CLIENT_SECRET",
            "TESSERA_SPA_CLIENT_ID",
            "TESSERA_SPA_COOKIE_CLIENT_ID",
            "TESSERA_TEST_DATABASE_URL",
        ]
        .map(str::to_owned);
        let w = unknown_env_vars(names);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("`TESSERA_ACESS_TOKEN_TTL_SECS`"), "{w:?}");
        assert!(
            w[0].contains("did you mean `TESSERA_ACCESS_TOKEN_TTL_SECS`"),
            "{w:?}"
        );
        assert!(w[1].contains("`TESSERA_WHATEVER_ELSE_ENTIRELY`"), "{w:?}");
        assert!(!w[1].contains("did you mean"), "{w:?}");
    }

    #[test]
    fn edit_distance_suggests() {
        assert_eq!(
            edit_distance("acess_token_ttl_secs", "access_token_ttl_secs"),
            1
        );
        let e = known("acess_token_ttl_secs", "in t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `access_token_ttl_secs`"), "{e}");
    }
}
