//! The simulator's admin HTTP API: scan a QR, enter a pairing code, inject a fault, run a fault plan, change the
//! strictness, consume pre-keys, make accounts, have their phones send texts, list what
//! their phones decrypted, read the statistics. JSON in and out, 200 on success; bad input gets a 400 with a one-line reason
//! (`{"error": ".."}`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{Fault, FaultArgs, FaultPlan, Handle, ScanOptions, SimError, StrictPatch, Tamper};

/// The shortest interval a fault plan may have.
const MIN_PLAN_EVERY_MS: u64 = 10;

fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    let why: String = why.into();
    let line = why.lines().next().unwrap_or_default().to_string();
    (status, axum::Json(json!({ "error": line }))).into_response()
}

fn bad(why: impl Into<String>) -> Response {
    refuse(StatusCode::BAD_REQUEST, why)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    qr: String,
    phone: Option<String>,
    /// `hmac` or `account-signature`: the phone signs wrongly on purpose.
    tamper: Option<String>,
}

/// The phone types a pairing code ("Link with phone number").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterCodeRequest {
    phone: String,
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    device: String,
    kind: String,
    code: Option<u16>,
    expires_s: Option<u64>,
    delay_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanKind {
    kind: String,
    code: Option<u16>,
    expires_s: Option<u64>,
    delay_s: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanRequest {
    seed: u64,
    every_ms: u64,
    /// The faults to draw from; the demo's mix when left out.
    kinds: Option<Vec<PlanKind>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    from: String,
    to: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRequest {
    phone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    phone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeRequest {
    /// A device JID, or `*` for every device.
    device: String,
    n: usize,
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))
}

/// `POST /admin/scan`: the QR text and how the phone scans it.
fn parse_scan(body: &[u8]) -> Result<(String, ScanOptions), String> {
    let req: ScanRequest = parse(body)?;
    let tamper = match req.tamper.as_deref().map(|t| (t, Tamper::parse(t))) {
        None => None,
        Some((_, Some(t))) => Some(t),
        Some((t, None)) => {
            return Err(format!(
                "unknown tamper {t:?}: use hmac or account-signature"
            ));
        }
    };
    let options = ScanOptions {
        phone: req.phone,
        tamper,
    };
    Ok((req.qr, options))
}

/// `POST /admin/fault`: the device and the fault to inject.
fn parse_fault(body: &[u8]) -> Result<(String, Fault), String> {
    let req: FaultRequest = parse(body)?;
    let args = FaultArgs {
        code: req.code,
        expires_s: req.expires_s,
        delay_s: req.delay_s,
    };
    let parsed = Fault::parse(&req.kind, args).map_err(|e| e.to_string())?;
    Ok((req.device, parsed))
}

/// `POST /admin/plan`: the fault plan and its interval as asked (ms).
fn parse_plan(body: &[u8]) -> Result<(FaultPlan, u64), String> {
    let req: PlanRequest = parse(body)?;
    if req.every_ms < MIN_PLAN_EVERY_MS {
        return Err(format!("every_ms must be at least {MIN_PLAN_EVERY_MS}"));
    }
    let every = Duration::from_millis(req.every_ms);
    let mut plan = FaultPlan::demo(req.seed, every);
    if let Some(kinds) = req.kinds {
        if kinds.is_empty() {
            return Err("kinds is empty: leave it out for the demo's mix".to_string());
        }
        plan.kinds = kinds
            .iter()
            .map(|k| {
                let args = FaultArgs {
                    code: k.code,
                    expires_s: k.expires_s,
                    delay_s: k.delay_s,
                };
                Fault::parse(&k.kind, args)
            })
            .collect::<Result<Vec<Fault>, _>>()
            .map_err(|e| e.to_string())?;
    }
    Ok((plan, req.every_ms))
}

/// The admin endpoints that take a JSON body, for [`check_body`].
#[doc(hidden)]
pub const BODY_ENDPOINTS: [&str; 8] = [
    "scan",
    "enter-code",
    "fault",
    "plan",
    "strict",
    "consume-prekeys",
    "send",
    "account",
];

/// Parses and checks a body for `POST /admin/<endpoint>` as its handler does, without a
/// simulator (fuzzing: hostile bodies get an error, never a panic).
#[doc(hidden)]
pub fn check_body(endpoint: &str, body: &[u8]) -> Result<(), String> {
    match endpoint {
        "scan" => parse_scan(body).map(drop),
        "enter-code" => parse::<EnterCodeRequest>(body).map(drop),
        "fault" => parse_fault(body).map(|(_, f)| drop(f.stanza())),
        "plan" => parse_plan(body).map(drop),
        "strict" => {
            let patch: StrictPatch = parse(body)?;
            super::Strictness::default().apply(&patch)
        }
        "consume-prekeys" => parse::<ConsumeRequest>(body).map(drop),
        "send" => parse::<SendRequest>(body).map(drop),
        "account" => parse::<AccountRequest>(body).map(drop),
        other => Err(format!("no admin endpoint takes a body at {other:?}")),
    }
}

fn status_of(e: &SimError) -> StatusCode {
    match e {
        SimError::PairingFailed(_) | SimError::TooManyDevices(_) | SimError::WrongCode(_) => {
            StatusCode::CONFLICT
        }
        SimError::NoCodeWaiting(_) => StatusCode::NOT_FOUND,
        SimError::UnknownAccount(_) => StatusCode::NOT_FOUND,
        SimError::Bind { .. } | SimError::State { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

async fn scan(State(sim): State<Handle>, body: Bytes) -> Response {
    let (qr, options) = match parse_scan(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    match sim.scan_with(&qr, options).await {
        Ok(jid) => axum::Json(json!({ "device": jid })).into_response(),
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn enter_code(State(sim): State<Handle>, body: Bytes) -> Response {
    let req: EnterCodeRequest = match parse(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    match sim.enter_code(&req.phone, &req.code).await {
        Ok(jid) => axum::Json(json!({ "device": jid })).into_response(),
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn fault(State(sim): State<Handle>, body: Bytes) -> Response {
    let (device, parsed) = match parse_fault(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    match sim.fault(&device, parsed.clone()).await {
        Ok(hit) => axum::Json(json!({ "kind": parsed.name(), "connections": hit })).into_response(),
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn start_plan(State(sim): State<Handle>, body: Bytes) -> Response {
    let (plan, every_ms) = match parse_plan(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    let kinds: Vec<&str> = plan.kinds.iter().map(Fault::name).collect();
    let answer = json!({ "seed": plan.seed, "every_ms": every_ms, "kinds": kinds });
    sim.start_plan(plan);
    axum::Json(answer).into_response()
}

async fn stop_plan(State(sim): State<Handle>) -> Response {
    sim.stop_plan();
    axum::Json(json!({ "stopped": true })).into_response()
}

async fn strict(State(sim): State<Handle>, body: Bytes) -> Response {
    let patch: StrictPatch = match parse(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    match sim.set_strict(&patch) {
        Ok(now) => axum::Json(now.to_patch()).into_response(),
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn consume_prekeys(State(sim): State<Handle>, body: Bytes) -> Response {
    let req: ConsumeRequest = match parse(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    match sim.consume_prekeys(&req.device, req.n).await {
        Ok(left) => {
            let devices: serde_json::Map<String, serde_json::Value> =
                left.into_iter().map(|(jid, n)| (jid, json!(n))).collect();
            axum::Json(json!({ "left": devices })).into_response()
        }
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn send(State(sim): State<Handle>, body: Bytes) -> Response {
    let req: SendRequest = match parse(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    match sim.send_text(&req.from, &req.to, &req.text) {
        Ok(id) => axum::Json(json!({ "id": id })).into_response(),
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn account(State(sim): State<Handle>, body: Bytes) -> Response {
    let req: AccountRequest = match parse(&body) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    match sim.create_account(&req.phone) {
        Ok((jid, lid)) => axum::Json(json!({ "jid": jid, "lid": lid })).into_response(),
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn messages(
    State(sim): State<Handle>,
    query: Result<axum::extract::Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(axum::extract::Query(query)) = query else {
        return bad("GET /admin/messages needs ?phone=<digits>");
    };
    match sim.messages(&query.phone) {
        Ok(list) => axum::Json(json!({ "messages": list })).into_response(),
        Err(e) => refuse(status_of(&e), e.to_string()),
    }
}

async fn stats(State(sim): State<Handle>) -> Response {
    axum::Json(sim.stats()).into_response()
}

async fn not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no such endpoint: use POST /admin/scan, POST /admin/fault, POST or DELETE /admin/plan, POST /admin/strict, POST /admin/consume-prekeys, POST /admin/send, POST /admin/account, GET /admin/messages?phone=, GET /admin/stats",
    )
}

/// Serves the admin API until the simulator stops; returns its base URL.
pub(super) async fn serve(addr: SocketAddr, sim: Handle) -> Result<String, SimError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let cancel = sim.cancel.clone();
    let tasks = sim.core.tasks.clone();
    let app = Router::new()
        .route("/admin/scan", post(scan))
        .route("/admin/enter-code", post(enter_code))
        .route("/admin/fault", post(fault))
        .route("/admin/plan", post(start_plan).delete(stop_plan))
        .route("/admin/strict", post(strict))
        .route("/admin/consume-prekeys", post(consume_prekeys))
        .route("/admin/send", post(send))
        .route("/admin/account", post(account))
        .route("/admin/messages", get(messages))
        .route("/admin/stats", get(stats))
        .fallback(not_found)
        .with_state(sim);
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the simulator's admin API stopped");
        }
    });
    Ok(format!("http://{local}"))
}
