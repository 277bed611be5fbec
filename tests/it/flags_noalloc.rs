//! `FeatureFlags::get` does not allocate: a counting allocator watches this thread while
//! flags with a rollout, a minVersion and variants are read, and while a compiled config
//! answers for many different users.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use railgun_core::flags::{FeatureFlags, FlagsConfig};
use railgun_core::store::Store;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

#[test]
fn get_does_not_allocate() {
    let store = Arc::new(Store::open_in_memory().expect("store"));
    let flags = FeatureFlags::new(
        FlagsConfig::new("app", "install-1", "1.4.0".parse().expect("v")),
        store,
    )
    .expect("client");
    flags
        .load_document(
            br#"{"flags":[
              {"key":"rollout","enabled":true,"rolloutPercentage":50,"minVersion":"1.2.0-beta.1"},
              {"key":"ab","enabled":true,"variants":[{"name":"a","weight":1}]}]}"#,
        )
        .expect("config");
    // Without an exposure sink, variants are a lookup too.
    let before = allocations();
    let mut on = 0;
    for _ in 0..10_000 {
        on += usize::from(flags.get("rollout"));
        on += usize::from(flags.get("ab"));
        on += usize::from(flags.get("missing"));
    }
    let after = allocations();
    assert_eq!(after - before, 0, "get allocated {} times", after - before);
    assert!(on >= 10_000);
    // The counter works: details() clones its result.
    let before = allocations();
    let d = flags.details("ab");
    assert!(allocations() > before);
    assert_eq!(d.variant.as_deref(), Some("a"));
}

#[test]
fn evaluating_a_compiled_config_for_new_users_does_not_allocate() {
    use railgun_core::flags::{CompiledConfig, EvalContext, RemoteConfig};
    let config = CompiledConfig::new(
        &RemoteConfig::parse(
            br#"{"flags":[
              {"key":"rollout","enabled":true,"rolloutPercentage":50,"minVersion":"1.2.0-beta.1"},
              {"key":"ab","enabled":true,"rolloutPercentage":80,
               "variants":[{"name":"a","weight":1},{"name":"b","weight":1}]}]}"#,
        )
        .expect("config"),
    );
    let users: Vec<EvalContext> = (0..1000)
        .map(|i| EvalContext {
            user_id: format!("user-{i}"),
            app_version: "1.4.0".parse().expect("v"),
            platform: "linux".into(),
            channel: "stable".into(),
        })
        .collect();
    let before = allocations();
    let (mut on, mut variants) = (0, 0);
    for ctx in &users {
        on += usize::from(config.evaluate("rollout", ctx).value);
        variants += usize::from(config.evaluate("ab", ctx).variant.is_some());
        on += usize::from(config.evaluate("missing", ctx).value);
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "evaluate allocated {} times",
        after - before
    );
    // About half the users pass the 50 % rollout, about 80 % get a variant.
    assert!((400..600).contains(&on), "{on} of 1000 on");
    assert!(
        (700..900).contains(&variants),
        "{variants} of 1000 with a variant"
    );
}
