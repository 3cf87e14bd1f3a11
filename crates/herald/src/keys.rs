//! The main key that seals endpoint signing keys at rest (see `herald_core::sealing`):
//! from `main_key` (`HERALD_MAIN_KEY`), or from a key file apart from the database,
//! generated on first start with mode 0600. A key file holds one base64 key per line:
//! the main key first, then previous keys still accepted for opening (a rotation writes
//! both until every secret is re-sealed).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use herald_core::sealing::{MainKey, Sealer};

use crate::config::Config;

/// Where the main key came from, for the start-up message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `main_key` / `HERALD_MAIN_KEY`.
    Configured,
    /// An existing key file.
    File(PathBuf),
    /// A key file written on this start.
    Generated(PathBuf),
}

pub fn key_file_path(config: &Config) -> PathBuf {
    if config.main_key_file.is_empty() {
        config.data_dir.join("herald.key")
    } else {
        PathBuf::from(&config.main_key_file)
    }
}

/// Loads the main key (generating a key file when allowed) and the previous keys.
pub fn load_sealer(config: &Config) -> anyhow::Result<(Sealer, KeySource)> {
    let mut previous = config
        .previous_main_keys
        .iter()
        .map(|k| MainKey::parse(k).context("previous_main_keys"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !config.main_key.is_empty() {
        let main = MainKey::parse(&config.main_key).context("main_key / HERALD_MAIN_KEY")?;
        return Ok((Sealer::new(main, previous), KeySource::Configured));
    }
    let path = key_file_path(config);
    if path.exists() {
        let mut keys = read_key_file(&path)?;
        let main = keys.remove(0);
        previous.extend(keys);
        return Ok((Sealer::new(main, previous), KeySource::File(path)));
    }
    if !config.database_url.is_empty() {
        bail!(
            "no main key: every node on one PostgreSQL database must seal secrets with the same key. \
             Create one with `herald keygen` and give it to every node as HERALD_MAIN_KEY (or main_key_file)"
        );
    }
    let main = MainKey::generate();
    write_key_file(&path, &[&main])?;
    Ok((Sealer::new(main, previous), KeySource::Generated(path)))
}

/// Reads a key file: one base64 key per line, the main key first.
pub fn read_key_file(path: &Path) -> anyhow::Result<Vec<MainKey>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the main key file {}", path.display()))?;
    warn_if_readable_by_others(path);
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| MainKey::parse(l).with_context(|| format!("in {}", path.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("the main key file {} holds no key", path.display());
    }
    Ok(keys)
}

/// Writes `keys` (main first) to `path` with mode 0600, replacing it atomically.
pub fn write_key_file(path: &Path, keys: &[&MainKey]) -> anyhow::Result<()> {
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("creating the main key file {}", tmp.display()))?;
    writeln!(
        file,
        "# Herald main key: it seals endpoint signing keys. Keep it secret, and apart from database backups."
    )?;
    for key in keys {
        writeln!(file, "{}", key.expose())?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("replacing the main key file {}", path.display()))?;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the main key file can be read by other users; chmod 600 it");
            }
        }
    }
}
