//! Pairing by phone-number code in the simulator, on a pairing connection: the server checks
//! the companion's `companion_hello` (phone digits, wrapped key, Noise key, a `Browser (OS)`
//! display, nonce) and answers a ref; when the phone "types" a code (`POST /admin/enter-code`)
//! the phone wraps its ephemeral key with that code in `primary_hello`, opens the companion's
//! key bundle from `companion_finish` with it, and pairs as after a QR scan with the adv
//! secret both ends derived. A wrong code shows as a bundle that does not decrypt: the finish
//! is refused, the enter-code call answers why, and the companion stays unpaired.
//!
//! A child of `conn` so it can drive the connection's socket like the QR pairing does.

use std::time::Duration;

use super::{Conn, PAIR_REPLY_DEADLINE, random_ref};
use crate::sim::phone::ScanOptions;
use crate::sim::registry::Control;
use crate::sim::server::now_unix;
use crate::sim::{Handle, SimError};
use crate::wa::creds::KeyPair;
use crate::wa::node::Node;
use crate::wa::pair::{QrInfo, SERVER_JID};
use crate::wa::pair_code::{self, CompanionHello, LinkCode, PairCodeError};

/// How long `enter_code` waits for the whole exchange (two PBKDF2 runs each side, pairing).
const ENTER_DEADLINE: Duration = Duration::from_secs(40);

/// A companion that asked for a code on this connection.
struct Waiting {
    hello: CompanionHello,
    reference: Vec<u8>,
}

/// The code pairing state of one pairing connection.
pub(super) struct CodeState {
    noise_public: [u8; 32],
    identity: [u8; 32],
    waiting: Option<Waiting>,
}

impl CodeState {
    /// For the connection that registered with these keys.
    pub(super) fn new(noise_public: [u8; 32], identity: [u8; 32]) -> Self {
        CodeState {
            noise_public,
            identity,
            waiting: None,
        }
    }
}

/// Whether `node` is a `link_code_companion_reg` iq for [`Conn::code_iq`].
pub(super) fn is_code_iq(node: &Node) -> bool {
    pair_code::companion_stage(node).is_some()
}

fn refused(id: &str, why: &str) -> Node {
    tracing::debug!(%why, "code pairing stanza refused");
    Node::new("iq")
        .attr("from", SERVER_JID)
        .attr("id", id)
        .attr("type", "error")
        .child(
            Node::new("error")
                .attr("code", "400")
                .attr("text", "bad-request"),
        )
}

fn result(id: &str) -> Node {
    Node::new("iq")
        .attr("from", SERVER_JID)
        .attr("id", id)
        .attr("type", "result")
}

impl Conn {
    /// Answers a `link_code_companion_reg` iq outside an entered code: a good
    /// `companion_hello` gets a ref and waits for the phone; anything else gets 400. Returns
    /// false once the client is gone.
    pub(super) async fn code_iq(&mut self, state: &mut CodeState, node: Node) -> bool {
        let id = node.get_attr("id").unwrap_or_default().to_string();
        let answer = match pair_code::companion_stage(&node) {
            Some("companion_hello") => match pair_code::parse_companion_hello(&node) {
                Ok(hello) if hello.noise_public != state.noise_public => refused(
                    &id,
                    "companion_server_auth_key_pub is not the Noise key of this connection",
                ),
                Ok(hello) => {
                    let reference = random_ref().into_bytes();
                    let answer = pair_code::hello_answer(&id, &reference);
                    self.core
                        .reg()
                        .add_code_wait(&hello.phone, state.noise_public);
                    state.waiting = Some(Waiting { hello, reference });
                    answer
                }
                Err(e) => refused(&id, &e.to_string()),
            },
            _ => refused(&id, "no code was entered on the phone"),
        };
        self.socket.send_node(&answer).await.is_ok()
    }

    /// The phone typed `entered`: `primary_hello`, the companion's `companion_finish`, the
    /// bundle opened with the typed code, then pairing as after a scan. Answers the device JID.
    /// Whatever the outcome, the companion must ask for a new code to try again.
    pub(super) async fn enter_code(
        &mut self,
        state: &mut CodeState,
        entered: LinkCode,
    ) -> Result<String, SimError> {
        let waiting = state
            .waiting
            .take()
            .ok_or(SimError::NoCodeWaiting(String::new()))?;
        self.core.reg().remove_code_wait(&state.noise_public);
        let phone = self.core.reg().phone(&waiting.hello.phone);
        let primary_ephemeral = KeyPair::generate();
        let (code, identity, ephemeral, reference) = (
            entered.clone(),
            phone.account.public,
            primary_ephemeral.clone(),
            waiting.reference.clone(),
        );
        let hello = tokio::task::spawn_blocking(move || {
            pair_code::primary_hello(&code, &identity, &ephemeral, &reference)
        })
        .await
        .map_err(|_| SimError::PairingFailed("the phone's key wrapping failed".into()))?;
        let note_id = self.iq_id();
        self.socket
            .send_node(&hello.notification(&note_id, now_unix()))
            .await
            .map_err(|_| SimError::PairingFailed("the client left".into()))?;

        let finish = self.wait_for_finish().await?;
        let finish_id = finish.get_attr("id").unwrap_or_default().to_string();
        let opened = match pair_code::parse_companion_finish(&finish) {
            Err(e) => Err(e),
            Ok(f) if f.reference != waiting.reference => Err(PairCodeError::RefMismatch),
            Ok(f) if f.identity != state.identity => {
                Err(PairCodeError::BundleMismatch("companion identity"))
            }
            Ok(f) => {
                let (code, companion, primary) = (entered, waiting.hello.clone(), phone.clone());
                tokio::task::spawn_blocking(move || {
                    pair_code::open_bundle(
                        &code,
                        &companion,
                        &primary_ephemeral,
                        &primary.account,
                        &f,
                    )
                })
                .await
                .map_err(|_| SimError::PairingFailed("the phone's bundle check failed".into()))?
            }
        };
        let adv = match opened {
            Ok(adv) => adv,
            Err(e) => {
                let _ = self
                    .socket
                    .send_node(&refused(&finish_id, &e.to_string()))
                    .await;
                return Err(match e {
                    PairCodeError::WrongCode => SimError::WrongCode(waiting.hello.phone.clone()),
                    other => SimError::PairingFailed(other.to_string()),
                });
            }
        };
        self.socket
            .send_node(&result(&finish_id))
            .await
            .map_err(|_| SimError::PairingFailed("the client left".into()))?;
        let qr = QrInfo {
            reference: String::from_utf8_lossy(&waiting.reference).into_owned(),
            noise_public: state.noise_public,
            identity_public: state.identity,
            adv_secret: *adv.expose(),
            platform: Some(waiting.hello.display.browser.qr_platform()),
        };
        let options = ScanOptions {
            phone: Some(waiting.hello.phone),
            tamper: None,
        };
        self.pair(&qr, options).await
    }

    /// Reads until the companion's `companion_finish`, answering anything else as usual.
    async fn wait_for_finish(&mut self) -> Result<Node, SimError> {
        let deadline = tokio::time::sleep(PAIR_REPLY_DEADLINE);
        tokio::pin!(deadline);
        loop {
            let node = tokio::select! {
                _ = self.cancel.cancelled() => {
                    return Err(SimError::PairingFailed("the simulator is stopping".into()));
                }
                _ = &mut deadline => {
                    return Err(SimError::PairingFailed(
                        "the client did not answer primary_hello with companion_finish in time"
                            .into(),
                    ));
                }
                node = self.socket.recv_node() => node
                    .map_err(|_| SimError::PairingFailed("the client left".into()))?,
            };
            match pair_code::companion_stage(&node) {
                Some("companion_finish") => return Ok(node),
                Some(_) => {
                    let id = node.get_attr("id").unwrap_or_default();
                    let _ = self
                        .socket
                        .send_node(&refused(id, "a code was already entered"))
                        .await;
                }
                None => {
                    self.answer(node).await;
                }
            }
        }
    }
}

impl Handle {
    /// The phone of `phone` types `code` in "Link with phone number": the companion that asked
    /// for a code for that number pairs if the code is the one it showed. Answers the new
    /// device's JID.
    pub async fn enter_code(&self, phone: &str, code: &str) -> Result<String, SimError> {
        let digits =
            pair_code::phone_digits(phone).map_err(|_| SimError::BadPhone(phone.to_string()))?;
        let code = LinkCode::parse(code).map_err(|e| SimError::BadCode(e.to_string()))?;
        let control = {
            let reg = self.core.reg();
            reg.code_wait(&digits)
                .and_then(|noise| reg.pending_for(&noise))
        }
        .ok_or_else(|| SimError::NoCodeWaiting(digits.clone()))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        control
            .send(Control::EnterCode { code, reply })
            .await
            .map_err(|_| SimError::NoCodeWaiting(digits.clone()))?;
        match tokio::time::timeout(ENTER_DEADLINE, answer).await {
            Ok(Ok(Err(SimError::NoCodeWaiting(_)))) => Err(SimError::NoCodeWaiting(digits)),
            Ok(Ok(result)) => result,
            _ => Err(SimError::PairingFailed(
                "the connection ended during pairing".into(),
            )),
        }
    }
}
