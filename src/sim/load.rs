//! The benchmarks' load generator: pairs fresh clients through a simulator's virtual phone and
//! holds logged-in connections open, idle. Works against a simulator in this process (scan
//! with `Handle::scan`) or in another one (scan through its admin API).

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

use super::Handle;
use super::server::now_unix;
use crate::net::conn::{ClientHandshake, ConnError, NoiseSocket, client_handshake};
use crate::net::transport;
use crate::wa::creds::Credentials;
use crate::wa::node::Node;
use crate::wa::noise::TrustRoot;
use crate::wa::pair;
use crate::wa::payload::{self, ClientVersion, QR_PLATFORM};
use crate::wa::stanza::{self, Cause, Incoming};

/// The longest wait for any one step (dial, handshake, a node from the server).
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// A client's socket after its handshake.
pub type ClientSocket = NoiseSocket<MaybeTlsStream<TcpStream>>;

/// Why a generated client could not pair or log in.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("the simulator did not send {0} in time")]
    Timeout(&'static str),
    #[error("expected {expected} from the simulator, got {got}")]
    Unexpected { expected: &'static str, got: String },
    #[error("the client could not complete pairing: {0}")]
    Pairing(#[from] pair::PairError),
    #[error("the phone did not scan: {0}")]
    Scan(String),
    #[error("the login payload could not be built: {0}")]
    Payload(String),
    #[error("the simulator refused the login ({0})")]
    Refused(Cause),
}

/// Where the simulator listens and which root its certificates chain to.
#[derive(Clone, Debug)]
pub struct Target {
    pub ws_url: String,
    pub trust: TrustRoot,
}

impl From<&Handle> for Target {
    fn from(sim: &Handle) -> Self {
        Target {
            ws_url: sim.ws_url.clone(),
            trust: sim.trust_root,
        }
    }
}

/// Dials and runs the handshake with a registration payload (unpaired credentials) or a
/// login payload (paired ones).
pub async fn connect(target: &Target, creds: &Credentials) -> Result<ClientSocket, LoadError> {
    let version = ClientVersion::default();
    let payload = if creds.is_paired() {
        payload::login_payload(creds, &version).map_err(|e| LoadError::Payload(e.to_string()))?
    } else {
        payload::registration_payload(creds, &version)
    };
    let ws = transport::dial(&target.ws_url, STEP_DEADLINE)
        .await
        .map_err(ConnError::from)?;
    let handshake = client_handshake(
        ws,
        ClientHandshake {
            noise_private: creds.noise.private.expose(),
            payload,
            trust: &target.trust,
            now_unix: now_unix(),
            routing: None,
        },
    );
    tokio::time::timeout(STEP_DEADLINE, handshake)
        .await
        .map_err(|_| LoadError::Timeout("the handshake"))?
        .map_err(LoadError::from)
}

async fn next(socket: &mut ClientSocket, what: &'static str) -> Result<Node, LoadError> {
    tokio::time::timeout(STEP_DEADLINE, socket.recv_node())
        .await
        .map_err(|_| LoadError::Timeout(what))?
        .map_err(LoadError::from)
}

fn unexpected(expected: &'static str, got: Incoming) -> LoadError {
    LoadError::Unexpected {
        expected,
        got: format!("{got:?}"),
    }
}

/// Pairs fresh credentials: registration, QR refs, `scan` of the first QR (the phone), the
/// client's pair-device-sign, then the simulator's 515. Returns the paired credentials.
pub async fn pair_new<F, Fut>(target: &Target, scan: F) -> Result<Credentials, LoadError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<String, String>>,
{
    let mut creds = Credentials::generate();
    let mut socket = connect(target, &creds).await?;
    let (id, refs) = match stanza::classify(next(&mut socket, "pair-device").await?) {
        Incoming::PairDevice { id, refs } if !refs.is_empty() => (id, refs),
        other => return Err(unexpected("pair-device", other)),
    };
    socket.send_node(&stanza::iq_result(&id)).await?;
    let qr = pair::qr_text(&refs[0], &creds, QR_PLATFORM);
    let client_side = async {
        let success = match stanza::classify(next(&mut socket, "pair-success").await?) {
            Incoming::PairSuccess { node, .. } => node,
            other => return Err(unexpected("pair-success", other)),
        };
        let parsed = pair::parse_pair_success(&success)?;
        let (account, reply) = pair::complete_pairing(&creds, &parsed)?;
        socket.send_node(&reply).await?;
        match stanza::classify(next(&mut socket, "515").await?) {
            Incoming::End(Cause::RestartRequired) => Ok(account),
            other => Err(unexpected("<stream:error code=\"515\"/>", other)),
        }
    };
    let (scanned, account) = tokio::join!(scan(qr), client_side);
    match (scanned, account) {
        (Ok(_), Ok(account)) => {
            creds.account = Some(account);
            Ok(creds)
        }
        (Ok(_), Err(e)) => Err(e),
        (Err(why), Ok(_)) => Err(LoadError::Scan(why)),
        (Err(why), Err(e)) => Err(LoadError::Scan(format!("{why} (the client: {e})"))),
    }
}

/// Logs paired credentials in; returns the socket once `<success>` arrived. Holding the
/// socket keeps the connection open and idle; dropping it closes the TCP connection.
pub async fn login(target: &Target, creds: &Credentials) -> Result<ClientSocket, LoadError> {
    let mut socket = connect(target, creds).await?;
    match stanza::classify(next(&mut socket, "success").await?) {
        Incoming::Success { .. } => Ok(socket),
        Incoming::End(cause) => Err(LoadError::Refused(cause)),
        other => Err(unexpected("<success>", other)),
    }
}
