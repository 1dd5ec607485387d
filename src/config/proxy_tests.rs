#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use super::*;

#[test]
fn urls_split_into_their_parts() {
    let u = ProxyUrl::parse("socks5://alice:s3cr%40t@127.0.0.1:1080").unwrap();
    assert_eq!(u.kind, ProxyKind::Socks5);
    assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 1080));
    let auth = u.auth.as_ref().unwrap();
    assert_eq!(auth.user, "alice");
    assert_eq!(auth.password.expose(), "s3cr@t");
    let u = ProxyUrl::parse("socks5h://proxy.example:9050/").unwrap();
    assert_eq!(
        (u.kind, u.port, u.auth.is_none()),
        (ProxyKind::Socks5h, 9050, true)
    );
    let u = ProxyUrl::parse("http://[::1]:3128").unwrap();
    assert_eq!((u.kind, u.host.as_str()), (ProxyKind::Http, "::1"));
    assert_eq!(u.address(), "[::1]:3128");
}

#[test]
fn bad_urls_are_refused_without_the_password() {
    for bad in [
        "socks4://u:hunter2@h:1",
        "socks5://u:hunter2@h",
        "socks5://u:hunter2@h:0",
        "socks5://u:hunter2@h:99999",
        "socks5://u:hunter2@:1080",
        "http://u:hunter2@h:1/path",
        "socks5://:hunter2@h:1",
        "socks5://u:hunter2%zz@h:1",
        "socks5://u:hunter2@::1:1080",
    ] {
        let reason = ProxyUrl::parse(bad).unwrap_err();
        assert!(!reason.contains("hunter2"), "{bad}: {reason}");
        assert!(
            reason.contains("***") || !bad.contains('@'),
            "{bad}: {reason}"
        );
    }
    assert!(
        ProxyUrl::parse("socks5://h")
            .unwrap_err()
            .contains("no port")
    );
}

#[test]
fn display_and_debug_redact_the_password() {
    let u = ProxyUrl::parse("socks5://alice:hunter2@127.0.0.1:1080").unwrap();
    assert_eq!(u.to_string(), "socks5://alice:***@127.0.0.1:1080");
    assert_eq!(
        format!("{u:?}"),
        "ProxyUrl(socks5://alice:***@127.0.0.1:1080)"
    );
    assert!(!format!("{:?}", u.auth).contains("hunter2"));
    assert_eq!(
        ProxyUrl::parse("http://h:3128").unwrap().to_string(),
        "http://h:3128"
    );
    assert_eq!(redact("x://a:b:c@d@e:1"), "x://a:***@e:1");
    assert_eq!(redact("no credentials"), "no credentials");
}

#[test]
fn server_proxies_are_dealt_round_robin_by_sorted_id() {
    let config = super::super::parse(
        "[server]\nproxies = [\"socks5://p1:1\", \"http://p2:2\"]\n\
         [[session]]\nid = \"c\"\n[[session]]\nid = \"a\"\n[[session]]\nid = \"own\"\nproxy = \"socks5h://mine:3\"\n\
         [[session]]\nid = \"b\"\n[[session]]\nid = \"off\"\nproxy = \"direct\"\n",
        "s.toml",
    )
    .unwrap();
    let path = |id: &str| {
        config
            .session(id)
            .unwrap()
            .proxy
            .as_ref()
            .map(|p| p.host.clone())
    };
    // Sorted inheriting ids: a, b, c.
    assert_eq!(path("a").as_deref(), Some("p1"));
    assert_eq!(path("b").as_deref(), Some("p2"));
    assert_eq!(path("c").as_deref(), Some("p1"));
    assert_eq!(path("own").as_deref(), Some("mine"));
    assert_eq!(path("off"), None);
    assert_eq!(config.server.proxies.len(), 2);
}

#[test]
fn one_server_proxy_serves_every_session() {
    let config = super::super::parse(
        "[server]\nproxy = \"http://u:pw@h:8080\"\n[[session]]\nid = \"a\"\n[[session]]\nid = \"b\"\n",
        "s.toml",
    )
    .unwrap();
    assert!(
        config
            .sessions
            .iter()
            .all(|s| s.proxy.as_ref().is_some_and(|p| p.port == 8080))
    );
}

#[test]
fn config_problems_name_file_session_and_field_but_not_the_password() {
    let err = super::super::parse(
        "[server]\nproxy = \"socks5://u:hunter2@h:1\"\nproxies = [\"socks5://h:2\"]\n\
         [[session]]\nid = \"a\"\nproxy = \"socks5://bob:hunter2@h\"\n\
         [[session]]\nid = \"b\"\nproxy = \"ftp://bob:hunter2@h:1\"\n",
        "s.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("s.toml:3:"), "{err}");
    assert!(
        err.contains("set proxy or proxies in [server], not both"),
        "{err}"
    );
    assert!(
        err.contains("s.toml:6:9: proxy in session \"a\" is not a proxy URL: \"socks5://bob:***@h\" has no port"),
        "{err}"
    );
    assert!(err.contains("proxy in session \"b\""), "{err}");
    let err = super::super::parse("[server]\nproxies = []\n", "s.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("proxies in [server] must not be empty"),
        "{err}"
    );
}
