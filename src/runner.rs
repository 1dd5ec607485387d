//! Running the pool for real: from a config to a started pool (with its HTTP endpoint),
//! the headless mode with signals and config reload, and the demo's virtual phone and chatter.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::cluster::Cluster;
use crate::config::{self, Config};
use crate::descriptors::{self, Budget, DescriptorError};
use crate::http::{self, Token};
use crate::net::board::StatusBoard;
use crate::net::handle::PoolHandle;
use crate::net::link::Endpoint;
use crate::net::pool::{self, Running};
use crate::net::tls::ClientTls;
use crate::net::version::{self, DISCOVERY_TIMEOUT};
use crate::store::FileStore;
use crate::wa::noise::TrustRoot;

mod http_access;

use http_access::{http_token, read_token, reload_http};

/// Where sessions connect, from the `[server]` table.
pub fn endpoint(config: &Config) -> Endpoint {
    Endpoint {
        url: config.server.url.clone(),
        trust: config
            .server
            .trust_root
            .map(TrustRoot)
            .unwrap_or_else(TrustRoot::whatsapp),
        version: config.server.client_version.unwrap_or_default(),
        device: config.server.device_name.clone(),
        proxy: None,
        // `ca_certs` were checked when the config was read.
        tls: ClientTls::with_extra(&config.server.ca_certs).unwrap_or_else(|_| ClientTls::webpki()),
        send_acks: true,
    }
}

/// A started pool and, when asked, its HTTP endpoint; the local socket when it could be served.
pub struct Started {
    pub running: Running,
    pub http: Option<http::Server>,
    pub socket: Option<http::UnixServer>,
    /// The tokens the endpoint and the local socket check (SIGHUP replaces them).
    pub access: http::LiveAccess,
    pub cancel: CancellationToken,
    /// Clustered: this node's member of the fleet and its loop (awaited at stop, so the
    /// leases are released for the other nodes at once).
    pub member: Option<(crate::cluster::Cluster, tokio::task::JoinHandle<()>)>,
    /// The webhook tasks, when some session has a webhook.
    pub webhooks: Option<crate::webhook::Webhooks>,
}

/// The local socket of a data directory (`<data_dir>/wasp.sock`).
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(http::SOCKET_NAME)
}

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("could not write the HTTP token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the variable {0} named in [http] holds only whitespace: put the token in it or unset it"
    )]
    BlankTokenVariable(String),
    #[error(transparent)]
    Descriptors(#[from] DescriptorError),
    #[error(
        "secret_env in [webhook] names the variable {0}, which is not set: put the signing secret in it or remove secret_env"
    )]
    MissingWebhookSecret(String),
}

impl StartError {
    /// True when the config (or the environment it names) is at fault: exit code 2.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StartError::Http(http::HttpError::NoTokenOnPublicBind(_))
                | StartError::BlankTokenVariable(_)
                | StartError::MissingWebhookSecret(_)
                | StartError::Descriptors(DescriptorError::DoesNotFit { .. })
        )
    }
}

/// Refuses, before anything starts, what the config cannot run with: a blank token
/// variable, a public bind without a token, more sessions than the open-files limit holds.
pub fn check_before_start(
    config: &Config,
    http_addr: Option<SocketAddr>,
) -> Result<(), StartError> {
    let addr = http_addr.or(config.http.as_ref().map(|h| h.listen));
    if let Some(name) = config.http.as_ref().and_then(|h| h.blank_token_variable()) {
        return Err(StartError::BlankTokenVariable(name.to_string()));
    }
    if let Some(name) = config.webhook.as_ref().and_then(|w| w.missing_secret()) {
        return Err(StartError::MissingWebhookSecret(name.to_string()));
    }
    if let Some(addr) = addr {
        let configured = config
            .http
            .as_ref()
            .and_then(|h| h.bearer_token())
            .is_some();
        if !addr.ip().is_loopback() && !configured {
            return Err(http::HttpError::NoTokenOnPublicBind(addr).into());
        }
    }
    let limit = descriptors::current()?;
    let budget = Budget::of(config, addr.is_some());
    budget.check(limit.soft)?;
    let fit = budget.sessions_that_fit(limit.soft);
    if u64::from(config.limits.max_sessions) > fit {
        warn!(
            max_sessions = config.limits.max_sessions,
            fit,
            limit = limit.soft,
            "[limits] max_sessions is more than the open-files limit holds: sessions added past {fit} would fail to connect"
        );
    }
    Ok(())
}

/// Starts the pool on `config` and, when `http` (or `[http] listen`) is set, the endpoint.
/// Everything `check_before_start` refuses is refused before the pool starts.
pub async fn start(config: &Config, http_addr: Option<SocketAddr>) -> Result<Started, StartError> {
    check_before_start(config, http_addr)?;
    let addr = http_addr.or(config.http.as_ref().map(|h| h.listen));
    let token = match addr {
        Some(_) => Some(http_token(config)?),
        None => None,
    };
    let cancel = CancellationToken::new();
    let mut endpoint = endpoint(config);
    let resolved = version::resolve(&config.server, version::SW_JS_URL, DISCOVERY_TIMEOUT).await;
    info!(version = %resolved.version, "using {}", resolved.describe());
    endpoint.version = resolved.version;
    let (running, member) = match &config.cluster {
        None => {
            let store = Arc::new(FileStore::new(&config.storage.data_dir));
            let running = pool::start(config, endpoint, store, cancel.clone());
            (running, None)
        }
        Some(cluster) => {
            let (running, member) = start_clustered(config, cluster, endpoint, &cancel).await?;
            (running, Some(member))
        }
    };
    let webhooks = crate::webhook::WebhookSetup::of(config, &running.handle)
        .map(|setup| crate::webhook::start(setup, &running.handle, cancel.clone()));
    // One set of rules for the TCP endpoint and the local socket, replaced on SIGHUP.
    let access = http::LiveAccess::new(http::Access {
        token: token.clone(),
        read_token: config.http.as_ref().and_then(read_token),
    });
    let http = match addr {
        Some(addr) => {
            let limits = http::Limits::of(&config.http.clone().unwrap_or_default());
            let served = http::serve(
                addr,
                access.clone(),
                limits,
                running.handle.clone(),
                cancel.clone(),
            )
            .await;
            match served {
                Ok(server) => Some(server),
                Err(e) => {
                    cancel.cancel();
                    return Err(e.into());
                }
            }
        }
        None => None,
    };
    let socket = serve_socket(config, token, &access, &running, &cancel).await;
    Ok(Started {
        running,
        http,
        socket,
        access,
        cancel,
        member,
        webhooks,
    })
}

/// The pool as one member of a fleet: Redis must answer now (else one sentence, exit 1);
/// credentials in Redis or in the local files, as configured.
async fn start_clustered(
    config: &Config,
    cluster: &config::ClusterConfig,
    endpoint: Endpoint,
    cancel: &CancellationToken,
) -> Result<(Running, (Cluster, tokio::task::JoinHandle<()>)), StartError> {
    use crate::store::mirror::Mirror;
    use crate::store::{CredentialStore, Fences, RedisStore};
    let fences = Fences::default();
    let member = Cluster::connect(cluster, config, fences.clone()).await?;
    let local = FileStore::new(&config.storage.data_dir);
    let mut seam = member.seam();
    let store: Arc<dyn CredentialStore> = match cluster.credentials {
        config::CredentialStore::File => Arc::new(local),
        config::CredentialStore::Redis => {
            // The key store (Signal sessions, pre-keys, outbox) follows the credentials.
            seam.mirror = Some(Mirror::new(member.redis_client(), fences.clone()));
            Arc::new(RedisStore::new(member.redis_client(), fences, local))
        }
    };
    let running = pool::start_with(config, endpoint, store, cancel.clone(), Some(seam));
    let task = member.spawn(running.handle.clone(), cancel.clone());
    info!(node = %cluster.node_id, "joined the cluster");
    Ok((running, (member, task)))
}

/// The local socket for `wasp attach` on this machine; `None` (logged) when it cannot be served.
async fn serve_socket(
    config: &Config,
    token: Option<Token>,
    access: &http::LiveAccess,
    running: &Running,
    cancel: &CancellationToken,
) -> Option<http::UnixServer> {
    let path = socket_path(&config.storage.data_dir);
    let token = match token {
        Some(token) => Ok(token),
        None => http_token(config),
    };
    let served = match token {
        Ok(token) => {
            if access.current().token.is_none() {
                access.replace(http::Access {
                    token: Some(token),
                    read_token: None,
                });
            }
            http::serve_unix(
                &path,
                access.clone(),
                running.handle.clone(),
                cancel.clone(),
            )
            .await
            .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    match served {
        Ok(server) => Some(server),
        Err(e) => {
            warn!(error = %e, "no local socket: `wasp attach` needs the HTTP endpoint");
            None
        }
    }
}

/// Stops the pool: every socket closed within the shutdown budget.
pub async fn stop(started: Started) {
    started.running.handle.shutdown().await;
    let budget = pool::SHUTDOWN_BUDGET + Duration::from_millis(500);
    if tokio::time::timeout(budget, started.running.task)
        .await
        .is_err()
    {
        warn!("the pool did not stop within {budget:?}");
    }
    started.cancel.cancel();
    // The endpoints end before `stop` returns: a pool started next on the same data directory
    // must not find its socket file removed by this one's late cleanup.
    let endpoints = [
        started.http.map(|server| server.task),
        started.socket.map(|socket| socket.task),
    ];
    for task in endpoints.into_iter().flatten() {
        if tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
        {
            warn!("an HTTP endpoint did not close within 2 s");
        }
    }
    if let Some(webhooks) = started.webhooks {
        webhooks.stopped(Duration::from_secs(2)).await;
    }
    if let Some((_, task)) = started.member
        && tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
    {
        warn!("the cluster member did not release its leases within 2 s");
    }
}

/// Applies a reloaded config to a started pool (what SIGHUP does): sessions added and
/// removed, policies, `[messages]` send limits and `[webhook]` targets, timing and secret, all
/// in place; nothing queued (messages, webhook events) is dropped. A secret variable that is
/// not set refuses the whole reload.
pub async fn reload(
    started: &mut Started,
    current: &Config,
    new: Config,
) -> Result<(), StartError> {
    if let Some(name) = new.webhook.as_ref().and_then(|w| w.missing_secret()) {
        return Err(StartError::MissingWebhookSecret(name.to_string()));
    }
    info!(sessions = new.sessions.len(), "config reloaded");
    reload_http(&mut current.http.clone(), &new, started);
    if new.probe != current.probe {
        warn!("[probe] changed: sessions keep the old probe settings until wasp restarts");
    }
    if let Some((member, _)) = &started.member {
        member.set_sessions(&new);
    }
    reload_webhooks(started, &new);
    let _ = started.running.reload.send(new).await;
    Ok(())
}

/// Applies a reloaded `[webhook]`: the running tasks take the new timing and secret (the
/// pool swaps the targets); a first webhook starts them.
fn reload_webhooks(started: &mut Started, new: &Config) {
    if let Some(webhooks) = &started.webhooks {
        webhooks.reload(new);
        return;
    }
    let handle = &started.running.handle;
    if let Some(setup) = crate::webhook::WebhookSetup::of(new, handle) {
        info!("webhooks started by reload");
        let webhooks = crate::webhook::start(setup, handle, started.cancel.clone());
        started.webhooks = Some(webhooks);
    }
}

/// `wasp headless`: the pool with JSON logs on stdout; SIGTERM/SIGINT stop it, SIGHUP reloads
/// the config (a bad file keeps the old config and logs why). Returns the exit code.
pub async fn headless(path: &Path, http_addr: Option<SocketAddr>) -> u8 {
    // Handlers first: a signal that arrives while the pool starts must not kill the process.
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!("could not install signal handlers");
        return 1;
    };
    let config = match config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for line in errors.lines() {
                eprintln!("{line}");
            }
            return 2;
        }
    };
    let mut started = match start(&config, http_addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasp headless: {e}");
            return if e.is_config() { 2 } else { 1 };
        }
    };
    if let Some(server) = &started.http {
        info!(addr = %server.addr, "http endpoint ready");
    }
    info!(sessions = config.sessions.len(), "wasp headless running");
    let mut config = config;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => match config::load(path) {
                Ok(new) => match reload(&mut started, &config, new.clone()).await {
                    Ok(()) => config = new,
                    Err(e) => warn!(problem = %e, "config reload refused; keeping the old config"),
                },
                Err(errors) => {
                    for line in errors.lines() {
                        warn!(problem = %line, "config reload refused; keeping the old config");
                    }
                }
            },
        }
    }
    info!("stopping: closing every session");
    stop(started).await;
    0
}

/// The demo's virtual phone: scans each QR the pool shows, a few seconds after it appears
/// (between `min` and `max`), as a person would.
pub async fn virtual_phone(
    board: Arc<StatusBoard>,
    sim: crate::sim::Handle,
    min: Duration,
    max: Duration,
    cancel: CancellationToken,
) {
    use rand::Rng;
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for status in board.snapshot() {
            let Some(qr) = status.qr() else {
                continue;
            };
            let text = qr.text.as_str().to_string();
            if !text.starts_with("https://") || !seen.insert(text.clone()) {
                continue;
            }
            let wait = if max > min {
                rand::thread_rng().gen_range(min..max)
            } else {
                min
            };
            let sim = sim.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Err(e) = sim.scan(&text, None).await {
                    tracing::debug!(error = %e, "virtual phone could not scan");
                }
            });
        }
    }
}

/// The demo's phone for pairing by code: every `every`-th session (by the number its id ends
/// with) that shows a QR asks for a pairing code for a made-up number, and that number's
/// phone types it at once, before the QR-scanning phone's first scan is due.
pub async fn code_phone(
    pool: PoolHandle,
    sim: crate::sim::Handle,
    every: u32,
    cancel: CancellationToken,
) {
    let mut seen = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for status in pool.board.snapshot() {
            let number: Option<u32> = status
                .id
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok());
            let picked = number.is_some_and(|n| every > 0 && n % every == 0);
            if !picked || status.qr().is_none() || !seen.insert(status.id.clone()) {
                continue;
            }
            let (pool, sim) = (pool.clone(), sim.clone());
            tokio::spawn(async move {
                let phone = crate::sim::phone::made_up_phone();
                let typed = match pool.pair_code(&status.id, &phone).await {
                    Ok(shown) => sim.enter_code(&phone, shown.code.as_str()).await,
                    Err(e) => Err(crate::sim::SimError::PairingFailed(e.to_string())),
                };
                match typed {
                    Ok(device) => {
                        info!(session = %status.id, %device, "the demo phone paired by code")
                    }
                    Err(e) => {
                        debug!(session = %status.id, error = %e, "the demo phone could not pair by code")
                    }
                }
            });
        }
    }
}

/// The demo's chatter: simulated friends (accounts made in the simulator) and the online demo
/// sessions text each other every `every` or so, and each session answers what it receives
/// now and then, so the console shows message traffic. Ends with `cancel`.
pub async fn demo_chatter(
    pool: crate::net::handle::PoolHandle,
    sim: crate::sim::Handle,
    every: Duration,
    cancel: CancellationToken,
) {
    use crate::net::messages::MessageEventKind;
    use rand::Rng;
    const FRIENDS: [&str; 3] = ["15550100001", "15550100002", "15550100003"];
    const LINES: [&str; 5] = [
        "hi, are you there?",
        "order #4411 is ready",
        "thanks!",
        "can you call me later?",
        "see you tomorrow",
    ];
    for friend in FRIENDS {
        if let Err(e) = sim.create_account(friend) {
            warn!(error = %e, "demo friend not created");
        }
    }
    let mut events = pool.message_events();
    loop {
        let wait = every.mul_f64(rand::thread_rng().gen_range(0.5..1.5));
        tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => {
                // Answer some received texts from the session that got them.
                if let Ok(event) = event
                    && let MessageEventKind::Received(m) = &event.kind
                    && !m.from_me
                    && rand::thread_rng().gen_bool(0.5)
                {
                    let to = m.chat.clone();
                    if let Err(e) = pool.send_text(&event.session, &to, "got it, thanks").await {
                        info!(error = %e, "demo reply not sent");
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {
                let online: Vec<_> = pool
                    .board
                    .snapshot()
                    .into_iter()
                    .filter(|s| s.state() == crate::session::status::StateName::Online)
                    .filter_map(|s| Some((s.id.clone(), s.account.phone.clone()?)))
                    .collect();
                if online.is_empty() {
                    continue;
                }
                let (pick, friend, line, from_friend) = {
                    let mut rng = rand::thread_rng();
                    (
                        rng.gen_range(0..online.len()),
                        FRIENDS[rng.gen_range(0..FRIENDS.len())],
                        LINES[rng.gen_range(0..LINES.len())],
                        rng.gen_bool(0.5),
                    )
                };
                let (session, phone) = &online[pick];
                if from_friend {
                    if let Err(e) = sim.send_text(friend, phone, line) {
                        info!(error = %e, "demo friend could not send");
                    }
                } else if let Err(e) = pool.send_text(session, friend, line).await {
                    info!(error = %e, "demo text not sent");
                }
            }
        }
    }
}
