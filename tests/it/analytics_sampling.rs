//! Sampling: per user, deterministic (`bucket("sample:{app}", userId)`), never per event;
//! the rate travels with every batch.

use crate::analytics_support;

use std::sync::Arc;

use analytics_support::{manual_clock, Receiver};
use railgun_core::analytics::{default_sample_rate, is_sampled, Analytics, Consent, Properties};
use railgun_core::identity::{bucket, in_percentage};

#[test]
fn about_ten_percent_of_100_000_users_are_sampled_at_rate_0_1() {
    let inside = (0..100_000)
        .filter(|i| is_sampled("rail-gun", &format!("install-{i}"), 0.1))
        .count();
    assert!(
        (9_000..=11_000).contains(&inside),
        "{inside} of 100 000 inside a 10 % sample"
    );
}

#[test]
fn sampling_is_deterministic_uses_the_shared_bucket_and_only_grows_with_the_rate() {
    for i in 0..2_000 {
        let id = format!("u{i}");
        let at10 = is_sampled("rail-gun", &id, 0.1);
        assert_eq!(at10, is_sampled("rail-gun", &id, 0.1));
        assert_eq!(at10, in_percentage(bucket("sample:rail-gun", &id), 10.0));
        if at10 {
            assert!(
                is_sampled("rail-gun", &id, 0.5),
                "raising the rate drops no one"
            );
        }
        assert!(is_sampled("rail-gun", &id, 1.0));
        assert!(!is_sampled("rail-gun", &id, 0.0));
    }
    // Another app samples another cohort.
    let differ = (0..2_000)
        .filter(|i| {
            let id = format!("u{i}");
            is_sampled("rail-gun", &id, 0.1) != is_sampled("other-app", &id, 0.1)
        })
        .count();
    assert!(differ > 100);
}

#[test]
fn default_rate_is_1_in_debug_builds() {
    assert_eq!(
        default_sample_rate(),
        if cfg!(debug_assertions) { 1.0 } else { 0.1 }
    );
}

fn user(inside: bool) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| is_sampled("rail-gun", u, 0.25) == inside)
        .expect("a user")
}

#[test]
fn a_sampled_out_user_records_nothing_and_a_sampled_in_user_sends_the_rate() {
    let rx = Receiver::start();
    let clock = manual_clock();
    for inside in [false, true] {
        let dir = tempfile::tempdir().expect("dir");
        let a = Analytics::builder()
            .app("rail-gun")
            .state_dir(dir.path())
            .url(&rx.url)
            .clock(Arc::new(clock.clone()))
            .install_id(&user(inside))
            .sample_rate(0.25)
            .default_consent(Consent::Granted)
            .upload_interval(None)
            .heartbeat_interval(None)
            .build()
            .expect("client");
        assert_eq!(a.is_sampled_in(), inside);
        for _ in 0..20 {
            a.track("message_sent", Properties::new()).expect("track");
        }
        a.shutdown().expect("shutdown");
    }
    let events = rx.events();
    assert_eq!(
        events.len(),
        22,
        "20 + session start and end, one user only"
    );
    assert!(events.iter().all(|e| e.user_id == user(true)));
    assert!(rx.batches().iter().all(|b| b.1 == 0.25));
}

#[test]
fn the_user_id_defaults_to_the_install_id() {
    let dir = tempfile::tempdir().expect("dir");
    let a = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .upload_interval(None)
        .build()
        .expect("client");
    let store = a.store().clone();
    assert_eq!(
        a.user_id(),
        railgun_core::identity::install_id("rail-gun", &store).expect("id")
    );
    assert!(a.user_id().len() >= 32);
}

#[test]
fn init_analytics_gives_one_process_wide_handle() {
    use railgun_core::analytics::{analytics, init_analytics, AnalyticsConfig, AnalyticsError};
    let dir = tempfile::tempdir().expect("dir");
    assert!(analytics().is_none());
    let config = AnalyticsConfig {
        context: railgun_core::ClientContext::new("rail-gun", "1.0.0").state_dir(dir.path()),
        default_consent: Consent::Granted,
        sample_rate: Some(1.0),
        upload_interval: None,
        heartbeat_interval: None,
        ..AnalyticsConfig::default()
    };
    let a = init_analytics(config.clone()).expect("init");
    a.screen("home").expect("screen");
    assert!(std::ptr::eq(a, analytics().expect("handle")));
    assert!(matches!(
        init_analytics(config),
        Err(AnalyticsError::AlreadyInitialized)
    ));
    a.shutdown().expect("shutdown");
    assert_eq!(a.stats().expect("stats").queued, 3, "start, screen, end");
}
