//! `wasp attach`'s remote pool against a real pool on the simulator: the fleet arrives whole,
//! a QR seen through the link pairs a session, a pairing code asked through it pairs another, an
//! operator request reaches the pool, a wrong token is one clear sentence, no token shows no QR,
//! a message sent through the link is shown delivered, the wipe needs the id again, and a pool
//! restarted under the link shows "unreachable", then the fleet again; the same against the `wasp headless` binary over its local
//! socket. Plus the console's header during an outage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio_util::sync::CancellationToken;
use wasp::attach::{AttachError, Client, Target, remote};
use wasp::config::{Config, SessionConfig};
use wasp::http::Token;
use wasp::runner;
use wasp::session::Command;
use wasp::session::status::{StateName, Status};
use wasp::sim::{Server, SimConfig};
use wasp::ui::messages::Recent;
use wasp::ui::{
    LogRing, Model, Msg, Order, PoolLink, PoolUpdate, Request, Settings, Stage, update,
};

const TOKEN: &str = "attach-token-42";
const WITHIN: Duration = Duration::from_secs(30);

fn pool_config(sim: &wasp::sim::Handle, dir: &std::path::Path, ids: &[&str]) -> Config {
    let mut config = common::http_config_on(sim, dir, TOKEN);
    config.sessions = ids
        .iter()
        .map(|id| {
            let mut s = SessionConfig::new(*id, config.policy.clone());
            s.autostart = true;
            s
        })
        .collect();
    config
}

/// What the console would hold: the fleet as updates made it, and the outages seen.
#[derive(Default)]
struct Seen {
    fleet: HashMap<String, Status>,
    outages: u32,
    reachable: bool,
    refused: Vec<String>,
    /// Pairing codes answered to this console: (session, code as shown).
    codes: Vec<(String, String)>,
    /// The messages as the console's pane would hold them.
    recent: Recent,
}

impl Seen {
    fn take(&mut self, update: PoolUpdate) {
        match update {
            PoolUpdate::Changed(batch) => {
                for s in batch {
                    self.fleet.insert(s.id.clone(), s);
                }
            }
            PoolUpdate::Fleet(all) => {
                self.fleet = all.into_iter().map(|s| (s.id.clone(), s)).collect();
                self.reachable = true;
            }
            PoolUpdate::Unreachable { .. } => {
                self.outages += 1;
                self.reachable = false;
            }
            PoolUpdate::Refused(text) => self.refused.push(text),
            PoolUpdate::PairCode { session, code, .. } => self.codes.push((session, code.shown())),
            PoolUpdate::Messages(lines) => self.recent.merge(lines),
            PoolUpdate::Answered(_) | PoolUpdate::Nodes(_) => {}
        }
    }

    /// Reads updates until `pred` holds; fails the test with what was seen otherwise.
    async fn until(&mut self, link: &mut PoolLink, what: &str, pred: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + WITHIN;
        while !pred(self) {
            match tokio::time::timeout_at(deadline, link.updates.recv()).await {
                Ok(Some(update)) => self.take(update),
                Ok(None) => panic!("the link closed before {what}"),
                Err(_) => panic!(
                    "{what} not seen within {WITHIN:?}: {:?}",
                    self.fleet
                        .values()
                        .map(|s| (&s.id, s.state()))
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    fn all_in(&self, ids: &[&str], state: StateName) -> bool {
        ids.iter()
            .all(|id| self.fleet.get(*id).is_some_and(|s| s.state() == state))
    }
}

async fn wait_for(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + WITHIN;
    while !pred() {
        assert!(Instant::now() < deadline, "{what} not within {WITHIN:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_pairs_acts_refuses_a_wrong_token_and_survives_a_restart() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids = ["alpha", "beta", "gamma"];
    let config = pool_config(&sim, dir.path(), &ids);
    let started = runner::start(&config, None).await.unwrap();
    let http = format!("http://{}", started.http.as_ref().unwrap().addr);
    let sock = runner::socket_path(dir.path());
    assert_eq!(started.socket.as_ref().unwrap().path, sock);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the local socket is the owner's only");
    }

    // A wrong token is refused at once, in one sentence naming the token.
    let wrong = Client::new(Target::parse(&http).unwrap(), Token::new("not-the-token"));
    let error = wrong.stream(remote::EVENTS_PATH).await.unwrap_err();
    assert!(
        matches!(error, AttachError::Refused { status: 401, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("token"), "{error}");

    // The console's link over the local socket, with the token.
    let cancel = CancellationToken::new();
    let client = Client::new(Target::Unix(sock.clone()), Token::new(TOKEN));
    let mut link = remote::link(Arc::new(client), LogRing::new(100), cancel.clone());
    let mut seen = Seen::default();
    seen.until(&mut link, "every session pairing with a QR", |s| {
        ids.iter().all(|id| {
            s.fleet
                .get(*id)
                .and_then(|st| st.qr())
                .is_some_and(|qr| !qr.text.as_str().is_empty())
        })
    })
    .await;

    // Without a token: read-only, the QR stays home (TCP this time).
    let read_only = Client::new(Target::parse(&http).unwrap(), None);
    let mut ro_link = remote::link(Arc::new(read_only), LogRing::new(10), cancel.clone());
    let mut ro = Seen::default();
    ro.until(&mut ro_link, "the read-only fleet", |s| s.reachable)
        .await;
    for id in ids {
        if let Some(qr) = ro.fleet[id].qr() {
            assert_eq!(qr.text.as_str(), "", "no QR text without the token");
        }
    }

    // Without the token no pairing code either: the request is refused in one sentence.
    ro_link
        .requests
        .send(Request {
            session: "gamma".into(),
            order: Order::PairCode {
                phone: "+15557654321".into(),
            },
        })
        .await
        .unwrap();
    ro.until(&mut ro_link, "the refused code request", |s| {
        !s.refused.is_empty()
    })
    .await;
    assert!(ro.codes.is_empty());
    assert!(ro.refused[0].contains("token"), "{:?}", ro.refused);

    // The phone scans the QRs the attached console shows, and types the code it asked for
    // gamma: every session comes online.
    for id in ["alpha", "beta"] {
        let text = seen.fleet[id].qr().unwrap().text.as_str().to_string();
        sim.scan(&text, None).await.unwrap();
    }
    link.requests
        .send(Request {
            session: "gamma".into(),
            order: Order::PairCode {
                phone: "+15557654321".into(),
            },
        })
        .await
        .unwrap();
    seen.until(&mut link, "gamma's pairing code", |s| !s.codes.is_empty())
        .await;
    let (session, code) = seen.codes[0].clone();
    assert_eq!(session, "gamma");
    let device = sim.enter_code("15557654321", &code).await.unwrap();
    assert!(device.starts_with("15557654321:"), "{device}");
    seen.until(&mut link, "every session online", |s| {
        s.all_in(&ids, StateName::Online)
    })
    .await;

    // A reconnect sent through the link reaches the pool: one login more.
    let logins = sim.stats().logins;
    link.requests
        .send(Request::run("beta", Command::ReconnectNow))
        .await
        .unwrap();
    wait_for("the reconnect's login", || sim.stats().logins > logins).await;
    // A refused request comes back as one sentence.
    link.requests
        .send(Request::run("nobody", Command::ReconnectNow))
        .await
        .unwrap();
    seen.until(&mut link, "the refusal", |s| !s.refused.is_empty())
        .await;
    assert!(
        seen.refused[0].contains("no session named nobody"),
        "{:?}",
        seen.refused
    );
    // A move from an attached console is posted with its body; a lone pool refuses it.
    link.requests
        .send(Request {
            session: "beta".into(),
            order: Order::Move {
                node: "node-b".into(),
            },
        })
        .await
        .unwrap();
    seen.until(&mut link, "the move's refusal", |s| s.refused.len() > 1)
        .await;
    assert!(
        seen.refused[1].starts_with("move beta to node-b") && seen.refused[1].contains("[cluster]"),
        "{:?}",
        seen.refused
    );

    // A message from the attached console is posted; its line comes back queued with its
    // text, and the stream's receipt events move it to delivered.
    sim.create_account("15550100009").unwrap();
    link.requests
        .send(Request {
            session: "alpha".into(),
            order: Order::Send {
                to: "15550100009".into(),
                text: "from attach".into(),
                after: Duration::ZERO,
            },
        })
        .await
        .unwrap();
    seen.until(&mut link, "the message delivered", |s| {
        s.recent.of("alpha").iter().any(|m| {
            m.text.as_deref() == Some("from attach")
                && matches!(m.stage, Stage::Delivered | Stage::Read)
        })
    })
    .await;
    // A console that selects alpha reads its kept messages (no token needed to read).
    ro_link
        .requests
        .send(Request {
            session: "alpha".into(),
            order: Order::Recent,
        })
        .await
        .unwrap();
    ro.until(&mut ro_link, "alpha's kept message", |s| {
        s.recent
            .of("alpha")
            .iter()
            .any(|m| m.text.as_deref() == Some("from attach"))
    })
    .await;

    // The wipe: refused without the id typed again, sent by the console's dialog with it.
    let direct = Client::new(Target::Unix(sock.clone()), Token::new(TOKEN));
    let error = direct.post("/sessions/gamma/wipe").await.unwrap_err();
    assert!(
        matches!(error, AttachError::Refused { status: 400, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("confirm=gamma"), "{error}");
    link.requests
        .send(Request::run(
            "gamma",
            Command::WipeCredentials { backup: true },
        ))
        .await
        .unwrap();
    seen.until(&mut link, "gamma wiped", |s| {
        s.fleet.get("gamma").is_some_and(|g| !g.account.paired)
    })
    .await;
    let ids = ["alpha", "beta"];

    // The pool restarts under the link: unreachable, then the whole fleet again.
    runner::stop(started).await;
    seen.until(&mut link, "the outage", |s| s.outages > 0 && !s.reachable)
        .await;
    let restarted = runner::start(&config, None).await.unwrap();
    seen.until(&mut link, "the fleet back online", |s| {
        s.reachable && s.all_in(&ids, StateName::Online)
    })
    .await;

    cancel.cancel();
    runner::stop(restarted).await;
    sim.shutdown();
}

/// A pool stopping while the next one starts on the same data directory: the old endpoint's
/// cleanup leaves the new socket file alone (it used to delete it, and the console's link then
/// never found the restarted pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_socket_endpoint_ending_late_keeps_the_new_socket_file() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = runner::start(&pool_config(&sim, dir.path(), &[]), None)
        .await
        .unwrap();
    let path = dir.path().join("late.sock");
    let handle = started.running.handle.clone();
    let (old_cancel, new_cancel) = (CancellationToken::new(), CancellationToken::new());
    let access = || {
        wasp::http::LiveAccess::new(wasp::http::Access {
            token: Token::new(TOKEN),
            read_token: None,
        })
    };
    let old = wasp::http::serve_unix(&path, access(), handle.clone(), old_cancel.clone())
        .await
        .unwrap();
    // The next pool finds the path taken by a file and binds its own there (as a restart does
    // once the old listener no longer answers).
    std::fs::remove_file(&path).unwrap();
    let new = wasp::http::serve_unix(&path, access(), handle, new_cancel.clone())
        .await
        .unwrap();
    old_cancel.cancel();
    old.task.await.unwrap();
    assert!(
        path.exists(),
        "the old endpoint removed the new socket file"
    );
    tokio::net::UnixStream::connect(&path)
        .await
        .expect("the new endpoint answers on its socket");
    new_cancel.cancel();
    new.task.await.unwrap();
    assert!(
        !path.exists(),
        "the new endpoint removes its own file when it ends"
    );
    runner::stop(started).await;
    sim.shutdown();
}

#[test]
fn the_header_says_since_when_the_daemon_is_unreachable() {
    let now = Instant::now();
    let mut model = Model::new(Settings::default(), LogRing::new(10));
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 3_723);
    update(
        &mut model,
        Msg::Pool(PoolUpdate::Unreachable {
            since,
            why: "nothing answers".into(),
        }),
        now,
    );
    let mut terminal = Terminal::new(TestBackend::new(120, 30)).unwrap();
    terminal
        .draw(|f| wasp::ui::view::draw(f, &model, now))
        .unwrap();
    let screen = terminal.backend().to_string();
    assert!(
        screen.contains("daemon unreachable since 01:02:03 UTC"),
        "{screen}"
    );
    // The whole fleet ends the outage.
    update(&mut model, Msg::Pool(PoolUpdate::Fleet(Vec::new())), now);
    assert!(model.unreachable().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_drives_the_wasp_headless_binary_over_its_local_socket() {
    let sim = Server::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("sessions.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nurl = {:?}\ntrust_root = {:?}\n[storage]\ndata_dir = {:?}\n\
             [[session]]\nid = \"one\"\nautostart = true\n[[session]]\nid = \"two\"\nautostart = true\n",
            sim.ws_url,
            sim.trust_root_base64(),
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut headless = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasp"))
        .arg("headless")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // `wasp attach` with no URL: the socket of the config's data directory and its token.
    let sock = runner::socket_path(&data);
    wait_for("the headless socket", || sock.exists()).await;
    let found = wasp::attach::find_local(&config).unwrap();
    assert_eq!(found, sock);
    let target = Target::Unix(found);
    let token = wasp::attach::find_token(&target, None).unwrap();
    assert!(token.is_some(), "the token beside the socket is read");
    let cancel = CancellationToken::new();
    let client = Arc::new(Client::new(target, token));
    let mut link = remote::link(client, LogRing::new(10), cancel.clone());
    let mut seen = Seen::default();
    let ids = ["one", "two"];
    seen.until(&mut link, "both sessions showing a QR", |s| {
        ids.iter().all(|id| {
            s.fleet
                .get(*id)
                .and_then(|st| st.qr())
                .is_some_and(|qr| !qr.text.as_str().is_empty())
        })
    })
    .await;
    for id in ids {
        let text = seen.fleet[id].qr().unwrap().text.as_str().to_string();
        sim.scan(&text, None).await.unwrap();
    }
    seen.until(&mut link, "both online", |s| {
        s.all_in(&ids, StateName::Online)
    })
    .await;

    // The daemon stops: the console says so.
    let pid = headless.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    seen.until(&mut link, "the outage", |s| s.outages > 0).await;
    let status = headless.wait().await.unwrap();
    assert!(status.success(), "headless exited with {status}");
    cancel.cancel();
    sim.shutdown();
}
