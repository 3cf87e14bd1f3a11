//! Sealed values already opened, by their sealed text. Opening (decrypting, and for a
//! signing key parsing) cost about 2 % of the server's time under load when done on
//! every attempt, so opened values are kept in memory: a re-sealed or changed value has
//! a new sealed text, and the map is emptied when it holds `MAX_OPENED`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Opened values kept in memory at most, per map.
const MAX_OPENED: usize = 10_000;

pub(crate) struct Opened<T> {
    by_sealed: Mutex<HashMap<String, Arc<T>>>,
}

impl<T> Opened<T> {
    pub(crate) fn new() -> Opened<T> {
        Opened {
            by_sealed: Mutex::new(HashMap::new()),
        }
    }

    /// The value sealed as `sealed`, opened with `open` the first time it is asked for.
    pub(crate) fn get_or_open(
        &self,
        sealed: &str,
        open: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Arc<T>, String> {
        if let Some(value) = self
            .by_sealed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sealed)
        {
            return Ok(value.clone());
        }
        let value = Arc::new(open(sealed)?);
        let mut map = self.by_sealed.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_OPENED {
            map.clear();
        }
        map.insert(sealed.to_string(), value.clone());
        Ok(value)
    }
}
