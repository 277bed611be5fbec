//! Sampling: per user, deterministic (`bucket("sample:{app}", userId)`), never per event;
//! the rate travels with every batch.

use crate::analytics_support;

use std::sync::Arc;

use analytics_support::{manual_clock, Receiver};
use railgun_core::analytics::{default_sample_rate, is_sampled, Analytics, Consent, Properties};
use railgun_core::identity::{bucket, in_percentage};
use railgun_core::Environment;

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
fn the_default_rate_is_every_user_while_developing_and_a_tenth_in_production() {
    assert_eq!(default_sample_rate(Environment::Development), 1.0);
    assert_eq!(default_sample_rate(Environment::Production), 0.1);
}

fn user_at(rate: f64, inside: bool) -> String {
    (0..)
        .map(|i| format!("user-{i}"))
        .find(|u| is_sampled("rail-gun", u, rate) == inside)
        .expect("a user")
}

fn user(inside: bool) -> String {
    user_at(0.25, inside)
}

/// Records one event as `user` in `environment` (the build's when `None`) without a sampling
/// rate, uploads to `rx` and returns the client's rate and whether it was sampled in.
fn track_without_a_rate(
    rx: &Receiver,
    environment: Option<Environment>,
    user: &str,
) -> (f64, bool) {
    let dir = tempfile::tempdir().expect("dir");
    let mut b = Analytics::builder()
        .app("rail-gun")
        .state_dir(dir.path())
        .url(&rx.url)
        .install_id(user)
        .sessions(false)
        .default_consent(Consent::Granted)
        .upload_interval(None)
        .heartbeat_interval(None);
    if let Some(e) = environment {
        b = b.environment(e);
    }
    let a = b.build().expect("client");
    a.track("message_sent", Properties::new()).expect("track");
    a.shutdown().expect("shutdown");
    (a.sample_rate(), a.is_sampled_in())
}

#[test]
fn production_samples_a_tenth_of_users_and_sends_the_rate_even_from_a_debug_build() {
    let rx = Receiver::start();
    let (inside, outside) = (user_at(0.1, true), user_at(0.1, false));
    assert!(
        is_sampled("rail-gun", &outside, 1.0),
        "in at development's rate"
    );
    assert_eq!(
        track_without_a_rate(&rx, Some(Environment::Production), &outside),
        (0.1, false)
    );
    assert!(
        rx.events().is_empty(),
        "a production user outside the tenth sends nothing"
    );
    assert_eq!(
        track_without_a_rate(&rx, Some(Environment::Production), &inside),
        (0.1, true)
    );
    assert_eq!(rx.events().len(), 1);
    assert!(
        rx.batches().iter().all(|b| b.1 == 0.1),
        "{:?}",
        rx.batches()
    );

    // The same outside user is recorded while developing, and the build decides by default.
    assert_eq!(
        track_without_a_rate(&rx, Some(Environment::Development), &outside),
        (1.0, true)
    );
    let built = if cfg!(debug_assertions) {
        (1.0, true)
    } else {
        (0.1, false)
    };
    assert_eq!(track_without_a_rate(&rx, None, &outside), built);
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
