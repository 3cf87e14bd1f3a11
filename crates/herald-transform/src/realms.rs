//! Realms kept between runs: one per lane (an endpoint or a destination) and script,
//! locked down so that a run leaves nothing the next one can see.
//!
//! A locked-down realm has every built-in object frozen and every global the realm
//! started with made read-only, so a script cannot change what later runs find
//! (`Object.prototype`, `JSON.stringify`, …). The script's own top level runs inside a
//! function each time, so its variables and closures are new on every run; and after
//! each run `__heraldReset` deletes every global the run added and puts the global
//! object's prototype back. A run that ends abnormally (a limit, an interrupt), or
//! after which the reset cannot undo something (a global defined as non-configurable),
//! throws its realm away.

use std::collections::HashMap;

use rquickjs::context::EvalOptions;
use rquickjs::{Context, Function};

/// Trusted code run once in a new realm.
const LOCKDOWN: &str = r#"
(function () {
  const seen = new Set([globalThis]);
  const freeze = (o) => {
    if ((typeof o !== "object" && typeof o !== "function") || o === null || seen.has(o)) return;
    seen.add(o);
    Object.freeze(o);
    for (const k of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, k);
      if (!d) continue;
      if ("value" in d) freeze(d.value); else { freeze(d.get); freeze(d.set); }
    }
    freeze(Reflect.getPrototypeOf(o));
  };
  const baseline = new Set(Reflect.ownKeys(globalThis));
  baseline.add("__heraldReset");
  for (const k of Reflect.ownKeys(globalThis)) {
    freeze(globalThis[k]);
    Reflect.defineProperty(globalThis, k, { writable: false, configurable: false });
  }
  const proto = Reflect.getPrototypeOf(globalThis);
  freeze(proto);
  const keys = Reflect.ownKeys, remove = Reflect.deleteProperty, setProto = Reflect.setPrototypeOf;
  const reset = () => {
    let clean = true;
    for (const k of keys(globalThis)) {
      if (!baseline.has(k) && !remove(globalThis, k)) clean = false;
    }
    if (!setProto(globalThis, proto)) clean = false;
    return clean;
  };
  Reflect.defineProperty(globalThis, "__heraldReset", { value: reset, writable: false, configurable: false, enumerable: false });
})();
"#;

/// The script as it is evaluated each run: its top level inside a function (one line
/// before it, which error positions take off), answering its `handler`.
pub(crate) fn wrapped(code: &str) -> String {
    format!("(function () {{\n{code}\n;return typeof handler === \"function\" ? handler : undefined;\n}})()")
}

/// Lines `wrapped` puts before the script.
pub(crate) const WRAPPER_LINES: u32 = 1;

pub(crate) fn options() -> EvalOptions {
    let mut options = EvalOptions::default();
    options.strict = false;
    options
}

/// Locks a new realm down (see the module's comment).
pub(crate) fn lock_down(context: &Context) -> rquickjs::Result<()> {
    context.with(|ctx| ctx.eval_with_options::<(), _>(LOCKDOWN, options()))
}

/// Takes back what a run added to the realm's globals; false when it could not.
pub(crate) fn reset(context: &Context) -> bool {
    context.with(|ctx| {
        let Ok(reset) = ctx.globals().get::<_, Function>("__heraldReset") else {
            return false;
        };
        reset.call::<_, bool>(()).unwrap_or(false)
    })
}

/// The realms one thread keeps, by lane, each with the script it was last used for.
#[derive(Default)]
pub(crate) struct RealmCache {
    realms: HashMap<String, Kept>,
    tick: u64,
}

struct Kept {
    code: String,
    context: Context,
    last_used: u64,
}

/// Realms one thread keeps at most (the least recently used goes first).
pub(crate) const MAX_REALMS: usize = 16;

impl RealmCache {
    /// The realm kept for `lane` when it last ran `code`.
    pub(crate) fn get(&mut self, lane: &str, code: &str) -> Option<Context> {
        self.tick += 1;
        let kept = self.realms.get_mut(lane).filter(|k| k.code == code)?;
        kept.last_used = self.tick;
        Some(kept.context.clone())
    }

    /// Keeps `context` for `lane` and `code`, making room first.
    pub(crate) fn put(&mut self, lane: &str, code: &str, context: Context) {
        self.realms.remove(lane);
        if self.realms.len() >= MAX_REALMS {
            let oldest = self
                .realms
                .iter()
                .min_by_key(|(_, k)| k.last_used)
                .map(|(lane, _)| lane.clone());
            if let Some(oldest) = oldest {
                self.realms.remove(&oldest);
            }
        }
        self.tick += 1;
        self.realms.insert(
            lane.to_string(),
            Kept {
                code: code.to_string(),
                context,
                last_used: self.tick,
            },
        );
    }

    pub(crate) fn forget(&mut self, lane: &str) {
        self.realms.remove(lane);
    }

    pub(crate) fn len(&self) -> usize {
        self.realms.len()
    }
}
