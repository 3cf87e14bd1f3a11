//! `herald rotate-main-key`: re-seals every endpoint signing key with a new main key.
//!
//! With a key file (the default), a new key is generated and written to the file in
//! front of the old one before anything is re-sealed, and the old one is dropped from
//! the file only once everything is re-sealed: a crash at any point leaves a file that
//! opens every stored secret. With `HERALD_MAIN_KEY`, the operator sets the new key
//! there and the old one in `HERALD_PREVIOUS_MAIN_KEYS` on every node, then runs this to
//! re-seal; afterwards the previous key can go.

use std::sync::Arc;

use anyhow::Context;
use herald_core::sealing::{MainKey, Sealer};
use herald_store::{Endpoint, ListQuery, SharedStore};

use crate::config::Config;
use crate::keys::{self, KeySource};

/// What a rotation did.
pub struct Rotated {
    pub endpoints: usize,
    pub key_id: String,
    pub key_file: Option<std::path::PathBuf>,
}

/// Rotates the main key and re-seals the secrets of every store given (each
/// environment's).
pub async fn rotate_main_key(config: &Config, stores: Vec<SharedStore>) -> anyhow::Result<Rotated> {
    let (current, source) = keys::load_sealer(config)?;
    let (sealer, key_file) = match source {
        KeySource::Configured => (current, None),
        KeySource::File(path) | KeySource::Generated(path) => {
            let old = keys::read_key_file(&path)?;
            let new = MainKey::generate();
            let mut all: Vec<&MainKey> = vec![&new];
            all.extend(old.iter());
            keys::write_key_file(&path, &all)?;
            (Sealer::new(new.clone(), old), Some((path, new)))
        }
    };
    let mut endpoints = 0;
    for store in &stores {
        endpoints += reseal_all(store, &sealer).await?;
    }
    if let Some((path, new)) = &key_file {
        keys::write_key_file(path, &[new])?;
    }
    Ok(Rotated {
        endpoints,
        key_id: sealer.main_key_id().to_string(),
        key_file: key_file.map(|(p, _)| p),
    })
}

/// Re-seals, with the sealer's main key, every endpoint secret sealed with another key
/// (or stored before secrets were sealed). Returns how many endpoints changed.
async fn reseal_all(store: &SharedStore, sealer: &Sealer) -> anyhow::Result<usize> {
    let sealer = Arc::new(sealer.clone());
    let mut changed = 0;
    let mut apps = page_start();
    loop {
        let page = store.app_list(apps.clone(), None).await?;
        for app in &page.data {
            let mut eps = page_start();
            loop {
                let list = store.endpoint_list(&app.id, eps.clone()).await?;
                for ep in list.data.iter().cloned() {
                    if let Some(resealed) = reseal(ep, &sealer)? {
                        store.endpoint_update(resealed).await?;
                        changed += 1;
                    }
                }
                if list.done {
                    break;
                }
                eps.iterator = list.iterator;
            }
        }
        if page.done {
            break;
        }
        apps.iterator = page.iterator;
    }
    Ok(changed)
}

fn page_start() -> ListQuery {
    ListQuery {
        limit: 250,
        iterator: None,
        descending: false,
    }
}

fn reseal(mut ep: Endpoint, sealer: &Sealer) -> anyhow::Result<Option<Endpoint>> {
    let sealed_headers = || {
        ep.headers
            .values()
            .filter(|v| herald_core::sealing::is_sealed(v))
    };
    if ep.secrets.iter().all(|s| sealer.is_current(&s.key))
        && sealed_headers().all(|v| sealer.is_current(v))
    {
        return Ok(None);
    }
    for s in &mut ep.secrets {
        let plain = sealer
            .open(&s.key)
            .with_context(|| format!("opening a signing key of endpoint {}", ep.id))?;
        s.key = sealer.seal(&plain);
    }
    // Sensitive custom header values are sealed too.
    for (name, value) in ep.headers.iter_mut() {
        if herald_core::sealing::is_sealed(value) {
            let plain = sealer
                .open(value)
                .with_context(|| format!("opening header {name} of endpoint {}", ep.id))?;
            *value = sealer.seal(&plain);
        }
    }
    Ok(Some(ep))
}
