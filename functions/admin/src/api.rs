//! The operators' REST API (DESIGN §1.7, contract paths and field names):
//!
//! - `GET  /admin/api/v1/channels/{channel_id}/config`
//! - `PUT  /admin/api/v1/channels/{channel_id}/config` (any subset of the fields)
//! - `GET  /admin/api/v1/channels/{channel_id}/audit[?limit=N]`
//! - `GET  /admin/api/v1/channels/{channel_id}/stats` (DESIGN §1.13, JSON)
//! - `GET  /admin/api/v1/channels/{channel_id}/runs.csv` (DESIGN §1.13, `text/csv`)
//!
//! Every route needs an Ory-issued operator JWT ([`Operator`]); the token's
//! `sub` is the audit actor. Changes obey the same bounds as `/coffee-admin`
//! (the `domain::admin` parse functions) and are written like it: config,
//! audit row and `channel.config_changed` event in one transaction. Errors
//! are JSON `{"error": "…"}`: 400 for bad input (nothing changes), 401 for
//! a missing or bad token, 404 for any other path under `/admin/api/v1`,
//! 405 (with `Allow`) for a method a resource does not have, 503 where Ory
//! is not configured (`local` only), 500 with no detail for our own
//! failures.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use coffeebuddy_shared::auth::{Operator, OryVerifier};
use coffeebuddy_shared::db::{audit, channels, stats};
use coffeebuddy_shared::domain::admin::{
    AuditAction, AutoCloseSetting, ConfigPatch, ConfigView, parse_auto_close_minutes,
    parse_reminder_offset, parse_retention_days, parse_timezone,
};
use coffeebuddy_shared::domain::ids::ChannelId;
use coffeebuddy_shared::events::ChannelConfigChanged;
use coffeebuddy_shared::runtime::{Context, Probe};
use serde_json::{Map, Value};

/// The configuration resource.
const CONFIG_PATH: &str = "/admin/api/v1/channels/{channel_id}/config";
/// The audit trail resource.
const AUDIT_PATH: &str = "/admin/api/v1/channels/{channel_id}/audit";
/// Every other path under the API's prefix: answered 404 in JSON.
const UNKNOWN_PATHS: [&str; 3] = ["/admin/api/v1", "/admin/api/v1/", "/admin/api/v1/{*rest}"];
/// The statistics resource.
const STATS_PATH: &str = "/admin/api/v1/channels/{channel_id}/stats";
/// The runs export.
const RUNS_CSV_PATH: &str = "/admin/api/v1/channels/{channel_id}/runs.csv";
/// The audit action of a change made through this API.
pub(crate) const ACTION: AuditAction = AuditAction::ApiUpdate;
/// Audit rows returned when `limit` is not given.
const DEFAULT_AUDIT_LIMIT: i64 = 50;
/// The most audit rows one request may ask for.
const MAX_AUDIT_LIMIT: i64 = 500;

/// The API's state: the function context and the verifier (one per process,
/// so the JWKS cache is shared by every request).
#[derive(Debug, Clone)]
struct ApiState {
    ctx: Context,
    verifier: OryVerifier,
}

impl FromRef<ApiState> for OryVerifier {
    fn from_ref(state: &ApiState) -> Self {
        state.verifier.clone()
    }
}

/// Why a request failed (after authentication, which [`Operator`] answers).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Bad input; the text is shown to the caller.
    #[error("{0}")]
    BadRequest(String),
    /// Our side failed; nothing changed (the transaction rolled back).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

fn error_body(status: StatusCode, error: &str) -> Response {
    (status, Json(serde_json::json!({ "error": error }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(reason) => {
                tracing::info!(%reason, "refused an admin API request");
                error_body(StatusCode::BAD_REQUEST, &reason)
            }
            Self::Unexpected(e) => {
                tracing::error!(error = format!("{e:#}"), "admin API request failed");
                error_body(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

/// The API's routes. Without Ory settings (only `local` allows that) every
/// path answers 503 `{"error":"admin API not configured"}`.
pub(crate) fn routes(ctx: &Context) -> Router {
    match ctx.ory.clone() {
        Some(verifier) => with_unknown_paths(
            Router::new()
                .route(
                    CONFIG_PATH,
                    get(get_config)
                        .put(put_config)
                        .fallback(|| method_not_allowed("GET, HEAD, PUT")),
                )
                .route(
                    AUDIT_PATH,
                    get(get_audit).fallback(|| method_not_allowed("GET, HEAD")),
                )
                .route(
                    STATS_PATH,
                    get(get_stats).fallback(|| method_not_allowed("GET, HEAD")),
                )
                .route(
                    RUNS_CSV_PATH,
                    get(get_runs_csv).fallback(|| method_not_allowed("GET, HEAD")),
                )
                .with_state(ApiState {
                    ctx: ctx.clone(),
                    verifier,
                }),
        ),
        None => with_unknown_paths(
            Router::new()
                .route(CONFIG_PATH, any(not_configured))
                .route(AUDIT_PATH, any(not_configured))
                .route(STATS_PATH, any(not_configured))
                .route(RUNS_CSV_PATH, any(not_configured)),
        ),
    }
}

/// Adds the JSON 404 for every path under the prefix that is not a
/// resource (axum's own answer is an empty body, not our error format).
fn with_unknown_paths(router: Router) -> Router {
    UNKNOWN_PATHS
        .iter()
        .fold(router, |router, path| router.route(path, any(not_found)))
}

async fn not_found() -> Response {
    error_body(StatusCode::NOT_FOUND, "not found")
}

/// A 405 in our error format, with the `Allow` header axum would send.
async fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = error_body(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// The API's readiness probe: Ory's JWKS, when Ory is configured.
pub(crate) fn probes(ctx: &Context) -> Vec<Probe> {
    ctx.ory.iter().map(OryVerifier::probe).collect()
}

async fn not_configured() -> Response {
    error_body(StatusCode::SERVICE_UNAVAILABLE, "admin API not configured")
}

fn channel_id(raw: &str) -> Result<ChannelId, ApiError> {
    ChannelId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The channel's configuration: stored, or the defaults a new channel would
/// get (without creating it: reading must not write).
async fn current_view(ctx: &Context, channel: &ChannelId) -> Result<ConfigView, ApiError> {
    let mut conn = ctx.db.acquire().await?;
    Ok(match channels::find(&mut conn, channel.as_ref()).await? {
        Some(config) => config.view(),
        None => {
            let d = &ctx.settings.channel_defaults;
            channels::ChannelConfig {
                channel_id: channel.to_string(),
                // As the `channels` table's column defaults.
                enabled: true,
                reminders_enabled: true,
                reminder_offset_minutes: d.reminder_offset_minutes,
                retention_days: d.retention_days,
                timezone: d.timezone,
                auto_close_minutes: None,
            }
            .view()
        }
    })
}

#[tracing::instrument(name = "admin_api_get_config", skip_all, fields(channel_id = %raw, operator))]
async fn get_config(
    Operator(operator): Operator,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<ConfigView>, ApiError> {
    tracing::Span::current().record("operator", operator.sub.as_str());
    let channel = channel_id(&raw)?;
    Ok(Json(current_view(&state.ctx, &channel).await?))
}

/// Parses a PUT body into a patch: a JSON object with any subset of the
/// configuration fields, each of the right type and within the
/// `/coffee-admin` bounds. Anything else is refused with a reason.
pub(crate) fn parse_patch(body: &[u8]) -> Result<ConfigPatch, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("the body must be a JSON object".to_owned());
    };
    parse_fields(&fields)
}

fn parse_fields(fields: &Map<String, Value>) -> Result<ConfigPatch, String> {
    const FIELDS: [&str; 6] = [
        "enabled",
        "reminders_enabled",
        "reminder_offset_minutes",
        "retention_days",
        "timezone",
        "auto_close_minutes",
    ];
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let shown: String = unknown.chars().take(40).collect();
        return Err(format!(
            "unknown field `{shown}`; expected any of {}",
            FIELDS.join(", ")
        ));
    }
    let boolean = |name: &str| -> Result<Option<bool>, String> {
        fields
            .get(name)
            .map(|v| v.as_bool().ok_or(format!("`{name}` must be true or false")))
            .transpose()
    };
    // A float (5.0), a string ("5") or a number beyond i64 gets the same
    // answer as an out-of-range integer: the message states the bounds.
    let integer = |name: &str, parse: fn(i64) -> Result<i32, _>| -> Result<Option<i32>, String> {
        fields
            .get(name)
            .map(|v| {
                parse(v.as_i64().unwrap_or(i64::MIN)).map_err(
                    |e: coffeebuddy_shared::domain::admin::ParseAdminError| {
                        format!("`{name}`: {e}")
                    },
                )
            })
            .transpose()
    };
    let timezone = fields
        .get("timezone")
        .map(|v| {
            v.as_str()
                .ok_or_else(|| "`timezone` must be a string (an IANA name)".to_owned())
                .and_then(|name| parse_timezone(name).map_err(|e| format!("`timezone`: {e}")))
        })
        .transpose()?;
    // `null` turns auto-close off; a number must be within 1–60.
    let auto_close = fields
        .get("auto_close_minutes")
        .map(|v| match v {
            Value::Null => Ok(AutoCloseSetting::Off),
            v => parse_auto_close_minutes(v.as_i64().unwrap_or(i64::MIN))
                .map(AutoCloseSetting::Before)
                .map_err(|e| format!("`auto_close_minutes`: {e} (`null` turns it off)")),
        })
        .transpose()?;
    Ok(ConfigPatch {
        enabled: boolean("enabled")?,
        reminders_enabled: boolean("reminders_enabled")?,
        reminder_offset_minutes: integer("reminder_offset_minutes", parse_reminder_offset)?,
        retention_days: integer("retention_days", parse_retention_days)?,
        timezone,
        auto_close,
    })
}

#[tracing::instrument(name = "admin_api_put_config", skip_all, fields(channel_id = %raw, operator))]
async fn put_config(
    Operator(operator): Operator,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<ConfigView>, ApiError> {
    tracing::Span::current().record("operator", operator.sub.as_str());
    let channel = channel_id(&raw)?;
    let patch = parse_patch(&body).map_err(ApiError::BadRequest)?;
    let ctx = &state.ctx;
    if patch.is_empty() {
        return Ok(Json(current_view(ctx, &channel).await?));
    }
    let mut tx = ctx.db.begin().await?;
    let (_, after) = channels::apply_patch(
        &mut tx,
        channel.as_ref(),
        &ctx.settings.channel_defaults,
        &operator.sub,
        ACTION,
        &patch,
    )
    .await?;
    ctx.record_channel_event(
        &mut tx,
        channel.as_ref(),
        &ChannelConfigChanged {
            channel_id: channel.to_string(),
            actor: operator.sub.clone(),
            action: ACTION.to_string(),
        },
    )
    .await?;
    ctx.commit_and_publish(tx).await?;
    tracing::info!("channel configuration changed through the admin API");
    Ok(Json(after.view()))
}

/// `?limit=N` of the audit route.
#[derive(Debug, serde::Deserialize)]
struct AuditParams {
    limit: Option<String>,
}

fn audit_limit(params: Result<Query<AuditParams>, QueryRejection>) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "`limit` must be a whole number from 1 to {MAX_AUDIT_LIMIT}"
        ))
    };
    let Query(params) = params.map_err(|_| bad())?;
    match params.limit {
        None => Ok(DEFAULT_AUDIT_LIMIT),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_AUDIT_LIMIT).contains(n))
            .ok_or_else(bad),
    }
}

#[tracing::instrument(name = "admin_api_get_audit", skip_all, fields(channel_id = %raw, operator))]
async fn get_audit(
    Operator(operator): Operator,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Vec<audit::AuditEntry>>, ApiError> {
    tracing::Span::current().record("operator", operator.sub.as_str());
    let channel = channel_id(&raw)?;
    let limit = audit_limit(params)?;
    let mut conn = state.ctx.db.acquire().await?;
    Ok(Json(audit::list(&mut conn, channel.as_ref(), limit).await?))
}

#[tracing::instrument(name = "admin_api_get_stats", skip_all, fields(channel_id = %raw, operator))]
async fn get_stats(
    Operator(operator): Operator,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Json<stats::ChannelStats>, ApiError> {
    tracing::Span::current().record("operator", operator.sub.as_str());
    let channel = channel_id(&raw)?;
    let mut conn = state.ctx.db.acquire().await?;
    Ok(Json(
        stats::channel_stats(&mut conn, channel.as_ref()).await?,
    ))
}

#[tracing::instrument(name = "admin_api_get_runs_csv", skip_all, fields(channel_id = %raw, operator, runs))]
async fn get_runs_csv(
    Operator(operator): Operator,
    State(state): State<ApiState>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    tracing::Span::current().record("operator", operator.sub.as_str());
    let channel = channel_id(&raw)?;
    let mut conn = state.ctx.db.acquire().await?;
    let runs = stats::exported_runs(&mut conn, channel.as_ref()).await?;
    drop(conn);
    tracing::Span::current().record("runs", runs.len());
    let body = crate::export::runs_csv(&runs).map_err(anyhow::Error::from)?;
    let disposition = format!("attachment; filename=\"coffeebuddy-{channel}-runs.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(body: &str) -> Result<ConfigPatch, String> {
        parse_patch(body.as_bytes())
    }

    #[test]
    fn any_subset_of_the_fields_within_bounds_is_a_patch() {
        assert_eq!(patch("{}"), Ok(ConfigPatch::default()));
        let p = patch(r#"{"enabled":false,"reminders_enabled":true,"reminder_offset_minutes":0,"retention_days":3650,"timezone":"Europe/Berlin"}"#).unwrap();
        assert_eq!(p.enabled, Some(false));
        assert_eq!(p.reminders_enabled, Some(true));
        assert_eq!(p.reminder_offset_minutes, Some(0));
        assert_eq!(p.retention_days, Some(3650));
        assert_eq!(p.timezone, Some(chrono_tz::Europe::Berlin));
        assert_eq!(p.auto_close, None);
        let on = patch(r#"{"auto_close_minutes":60}"#).unwrap();
        assert_eq!(
            on.auto_close
                .and_then(AutoCloseSetting::minutes)
                .map(|m| m.get()),
            Some(60)
        );
        let off = patch(r#"{"auto_close_minutes":null}"#).unwrap();
        assert_eq!(off.auto_close, Some(AutoCloseSetting::Off));
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        for (body, expected) in [
            (r#"{"reminder_offset_minutes":61}"#, "reminder offset"),
            (r#"{"reminder_offset_minutes":-1}"#, "reminder offset"),
            (r#"{"reminder_offset_minutes":5.5}"#, "reminder offset"),
            (r#"{"reminder_offset_minutes":"5"}"#, "reminder offset"),
            (r#"{"retention_days":0}"#, "Retention"),
            (r#"{"retention_days":3651}"#, "Retention"),
            (r#"{"retention_days":1e30}"#, "Retention"),
            (r#"{"timezone":"Mars/Olympus"}"#, "time zone"),
            (r#"{"timezone":5}"#, "must be a string"),
            (r#"{"auto_close_minutes":0}"#, "1 to 60"),
            (r#"{"auto_close_minutes":61}"#, "1 to 60"),
            (r#"{"auto_close_minutes":99}"#, "1 to 60"),
            (r#"{"auto_close_minutes":"off"}"#, "1 to 60"),
            (r#"{"auto_close_minutes":10.5}"#, "1 to 60"),
            (r#"{"enabled":"yes"}"#, "true or false"),
            (r#"{"enabled":null}"#, "true or false"),
            (r#"{"colour":"blue"}"#, "unknown field `colour`"),
            ("[1]", "JSON object"),
            ("{", "not valid JSON"),
            ("", "not valid JSON"),
        ] {
            let err = patch(body).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn the_audit_limit_has_a_default_and_bounds() {
        let q = |limit: Option<&str>| {
            audit_limit(Ok(Query(AuditParams {
                limit: limit.map(str::to_owned),
            })))
        };
        assert_eq!(q(None).unwrap(), DEFAULT_AUDIT_LIMIT);
        assert_eq!(q(Some("1")).unwrap(), 1);
        assert_eq!(q(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "-3", "ten", ""] {
            assert!(q(Some(bad)).is_err(), "{bad}");
        }
    }
}
