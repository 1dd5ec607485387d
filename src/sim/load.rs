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
use prost::Message as _;

use crate::wa::ack;
use crate::wa::creds::Credentials;
use crate::wa::device::DeviceName;
use crate::wa::node::Node;
use crate::wa::noise::TrustRoot;
use crate::wa::pair;
use crate::wa::payload::{self, ClientVersion, QR_PLATFORM};
use crate::wa::proto::payload::{ClientPayload, DeviceProps};
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

/// The registration payload of these credentials under the default device name
/// ("Chrome (Windows)"), which a strict simulator accepts.
pub fn registration_payload(creds: &Credentials) -> Vec<u8> {
    let bytes = payload::registration_payload(creds, &ClientVersion::default());
    let Ok(mut decoded) = ClientPayload::decode(bytes.as_slice()) else {
        return bytes;
    };
    let name = DeviceName::default();
    if let Some(reg) = decoded.device_pairing_data.as_mut() {
        let mut props = reg
            .device_props
            .as_deref()
            .and_then(|b| DeviceProps::decode(b).ok())
            .unwrap_or_default();
        props.os = Some(name.os.to_string());
        props.platform_type = Some(name.browser.platform_type() as i32);
        reg.device_props = Some(props.encode_to_vec());
    }
    decoded.encode_to_vec()
}

/// Dials and runs the handshake with a registration payload (unpaired credentials) or a
/// login payload (paired ones).
pub async fn connect(target: &Target, creds: &Credentials) -> Result<ClientSocket, LoadError> {
    let version = ClientVersion::default();
    let payload = if creds.is_paired() {
        payload::login_payload(creds, &version).map_err(|e| LoadError::Payload(e.to_string()))?
    } else {
        registration_payload(creds)
    };
    let ws = transport::dial(&target.ws_url, STEP_DEADLINE)
        .await
        .map_err(ConnError::from)?;
    let handshake = client_handshake(
        ws,
        ClientHandshake {
            noise: &creds.noise,
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

/// Logs paired credentials in; returns the socket once `<success>` arrived and everything
/// the simulator pushed after it is acknowledged (a ping after `<success>` is answered after
/// the pushes, so its answer marks their end). Holding the socket keeps the connection open
/// and idle; dropping it closes the TCP connection.
pub async fn login(target: &Target, creds: &Credentials) -> Result<ClientSocket, LoadError> {
    let mut socket = connect(target, creds).await?;
    match stanza::classify(next(&mut socket, "success").await?) {
        Incoming::Success { .. } => {}
        Incoming::End(cause) => return Err(LoadError::Refused(cause)),
        other => return Err(unexpected("<success>", other)),
    }
    let own = creds
        .account
        .as_ref()
        .map(|a| a.jid.clone())
        .unwrap_or_default();
    let ping = "load-settle";
    socket.send_node(&stanza::ping(ping)).await?;
    loop {
        let node = next(&mut socket, "the answer to a ping").await?;
        if let Some(ack) = ack::ack(&node, Some(&own)) {
            socket.send_node(&ack).await?;
            continue;
        }
        match stanza::classify(node) {
            Incoming::IqResult { id, .. } if id == ping => return Ok(socket),
            Incoming::End(cause) => return Err(LoadError::Refused(cause)),
            _ => {}
        }
    }
}
