//! The read endpoints: DAU / WAU / MAU, the DAU series, sessions, features (one name by day,
//! or every name summed), retention.
//!
//! Owns parameter parsing (strict `YYYY-MM-DD` dates, event names by the shared pattern,
//! bounded ranges) and the JSON answers, each with raw counts and the estimate scaled by
//! the sample rate. Every value reaches the database as a bound parameter; anything that
//! does not parse is a 400 before any query runs.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use railgun_core::analytics::is_valid_event_name;
use serde_json::json;

use super::AppState;
use crate::api::{ApiError, ApiQuery};
use crate::auth::ReadToken;
use crate::store::{day_date, day_number};

/// Longest range for `/analytics/features`, in days.
pub const MAX_RANGE_DAYS: i32 = 366;
/// Most days for `/analytics/retention`.
pub const MAX_RETENTION_DAYS: u32 = 365;
/// Default number of names `/analytics/feature-summary` answers.
pub const DEFAULT_FEATURE_LIMIT: u32 = 50;
/// Most names `/analytics/feature-summary` answers.
pub const MAX_FEATURE_LIMIT: u32 = 500;

type Params = ApiQuery<HashMap<String, String>>;

fn date(p: &HashMap<String, String>, name: &str, app: &AppState) -> Result<NaiveDate, ApiError> {
    match p.get(name) {
        None => Ok(app.clock.now().date_naive()),
        Some(v) => parse_date(name, v),
    }
}

fn parse_date(name: &str, v: &str) -> Result<NaiveDate, ApiError> {
    if v.len() != 10 {
        return Err(ApiError::bad_param(name, "expected YYYY-MM-DD"));
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map_err(|_| ApiError::bad_param(name, "expected YYYY-MM-DD"))
}

async fn active(
    app: AppState,
    p: HashMap<String, String>,
    days: i32,
) -> Result<Json<serde_json::Value>, ApiError> {
    let d = date(&p, "date", &app)?;
    let to = day_number(d);
    let from = to - (days - 1);
    let c = app.store.active_users(from, to).await?;
    Ok(Json(json!({
        "date": d, "from": day_date(from), "to": d, "users": c.raw, "estimate": c.estimate,
    })))
}

/// `GET /analytics/dau?date=`.
pub async fn dau(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    active(app, p, 1).await
}

/// `GET /analytics/wau?date=` (the 7 days ending on `date`).
pub async fn wau(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    active(app, p, 7).await
}

/// `GET /analytics/mau?date=` (the 30 days ending on `date`).
pub async fn mau(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    active(app, p, 30).await
}

/// `GET /analytics/sessions?date=`.
pub async fn sessions(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let d = date(&p, "date", &app)?;
    let s = app.store.sessions(day_number(d)).await?;
    Ok(Json(json!({
        "date": d, "count": s.count, "estimate": s.estimate,
        "meanMs": s.mean_ms, "medianMs": s.median_ms, "p90Ms": s.p90_ms,
    })))
}

/// `GET /analytics/features?name=&from=&to=` (default: the 30 days ending today).
pub async fn features(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let name = p
        .get("name")
        .ok_or_else(|| ApiError::bad_param("name", "required"))?;
    if !is_valid_event_name(name) {
        return Err(ApiError::bad_param(
            "name",
            "must match ^[a-z][a-z0-9_]{0,63}$",
        ));
    }
    let (from, to) = range(&p, &app)?;
    let days = app.store.feature(name.clone(), from, to).await?;
    let events: u64 = days.iter().map(|d| d.events).sum();
    let events_estimate: f64 = days.iter().map(|d| d.events_estimate).sum();
    Ok(Json(json!({
        "name": name, "from": day_date(from), "to": day_date(to),
        "events": events, "eventsEstimate": events_estimate, "days": days,
    })))
}

/// `from`/`to` of a range (default: the 30 days ending today), at most [`MAX_RANGE_DAYS`].
fn range(p: &HashMap<String, String>, app: &AppState) -> Result<(i32, i32), ApiError> {
    let to = day_number(date(p, "to", app)?);
    let from = match p.get("from") {
        Some(v) => day_number(parse_date("from", v)?),
        None => to - 29,
    };
    if from > to || to - from >= MAX_RANGE_DAYS {
        return Err(ApiError::bad_param(
            "from",
            format!("must be on or before `to`, at most {MAX_RANGE_DAYS} days apart"),
        ));
    }
    Ok((from, to))
}

/// `GET /analytics/dau-series?from=&to=` (default: the 30 days ending today): the daily
/// active users of every day of the range, oldest first, days without users as 0.
pub async fn dau_series(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (from, to) = range(&p, &app)?;
    let seen = app.store.daily_active(from, to).await?;
    let mut seen = seen.into_iter().peekable();
    let mut days = Vec::with_capacity((to - from + 1) as usize);
    for n in from..=to {
        let date = day_date(n);
        match seen.next_if(|d| d.date == date) {
            Some(d) => days.push(json!({"date": date, "users": d.users, "estimate": d.estimate})),
            None => days.push(json!({"date": date, "users": 0, "estimate": 0.0})),
        }
    }
    Ok(Json(
        json!({"from": day_date(from), "to": day_date(to), "days": days}),
    ))
}

/// `GET /analytics/feature-summary?from=&to=&limit=` (default: the 30 days ending today, 50
/// names): every event name of the range with its events and distinct users, most events
/// first.
pub async fn feature_summary(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (from, to) = range(&p, &app)?;
    let limit: u32 = match p.get("limit") {
        None => DEFAULT_FEATURE_LIMIT,
        Some(v) => v
            .parse()
            .ok()
            .filter(|l| (1..=MAX_FEATURE_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_param("limit", format!("an integer 1-{MAX_FEATURE_LIMIT}"))
            })?,
    };
    let features = app.store.feature_totals(from, to, limit).await?;
    Ok(Json(json!({
        "from": day_date(from), "to": day_date(to), "features": features,
    })))
}

/// `GET /analytics/retention?cohort=&days=`: users first seen on `cohort`, active again
/// on each following day.
pub async fn retention(
    _: ReadToken,
    State(app): State<AppState>,
    ApiQuery(p): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cohort = match p.get("cohort") {
        Some(v) => parse_date("cohort", v)?,
        None => return Err(ApiError::bad_param("cohort", "required")),
    };
    let days: u32 = match p.get("days") {
        None => 7,
        Some(v) => v
            .parse()
            .ok()
            .filter(|d| *d <= MAX_RETENTION_DAYS)
            .ok_or_else(|| {
                ApiError::bad_param("days", format!("an integer 0-{MAX_RETENTION_DAYS}"))
            })?,
    };
    let c = day_number(cohort);
    let (size, per_day) = app.store.retention(c, days).await?;
    let rows: Vec<_> = per_day
        .iter()
        .enumerate()
        .map(|(d, n)| {
            let rate = if size.raw == 0 { 0.0 } else { n.raw as f64 / size.raw as f64 };
            json!({"day": d, "date": day_date(c + d as i32), "users": n.raw, "estimate": n.estimate, "rate": rate})
        })
        .collect();
    Ok(Json(json!({
        "cohort": cohort, "size": size.raw, "sizeEstimate": size.estimate, "days": rows,
    })))
}
