//! Observability of the running server: `/metrics` in the Prometheus text format, one
//! log line per request with a request id (text and JSON), and no secret in any log (the
//! harness checks every server's log at drop; here a flow touching every secret kind).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{PASSWORD, Server, secrets_in};

/// One sample of the text exposition format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (version 0.0.4) strictly enough to catch a broken
/// exposition: `# HELP`/`# TYPE` comments, and `name{label="value",...} number` samples.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment: {line}");
            let name = parts.next().unwrap();
            assert!(valid_name(name), "bad metric name: {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                    "bad type: {line}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = BTreeMap::new();
                for pair in split_labels(body) {
                    let (k, v) = pair.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    assert!(valid_name(k), "bad label name: {line}");
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                    labels.insert(
                        k.to_owned(),
                        v.unwrap_or_else(|| panic!("{line}")).to_owned(),
                    );
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "bad metric name: {line}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Splits `a="x",b="y,z"` on the commas outside quotes.
fn split_labels(body: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < body.len() {
        out.push(&body[start..]);
    }
    out
}

/// The value of the sample `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(s: &Server) -> (String, Vec<Sample>) {
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers()
    );
    let text = r.text().await.unwrap();
    let samples = parse_exposition(&text);
    (text, samples)
}

#[tokio::test]
async fn metrics_count_requests_grants_refusals_reuse_logins_and_key_ages() {
    let s = Server::start_with("login_failures_per_account = 2\n", &[]);
    let (cc, cc_secret) = s.add_client("svc", "client_credentials", "a", &[]);
    let cc_secret = cc_secret.unwrap();
    let (web, web_secret) = s.add_client("web", "password,refresh_token", "a", &[]);
    let web_secret = web_secret.unwrap();
    s.add_user("alice", PASSWORD);

    let cc_form = [("grant_type", "client_credentials")];
    for _ in 0..2 {
        let r = s.token(&cc_form, Some((&cc, &cc_secret))).await;
        assert_eq!(r.status, 200);
    }
    s.token(&cc_form, Some((&cc, "wrong-secret")))
        .await
        .assert_error(401, "invalid_client");

    let login = |user: &'static str, password: &'static str| {
        [
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ]
    };
    let basic = Some((web.as_str(), web_secret.as_str()));
    let first = s.token(&login("alice", PASSWORD), basic).await;
    assert_eq!(first.status, 200);
    let rt = first.str("refresh_token");
    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
    ];
    assert_eq!(s.token(&refresh, basic).await.status, 200);
    s.token(&refresh, basic)
        .await
        .assert_error(400, "invalid_grant");
    // Two failures reach the per-account threshold; the third attempt is throttled.
    s.token(&login("bob", "not-his-password"), basic)
        .await
        .assert_error(400, "invalid_grant");
    s.token(&login("alice", "not-her-password"), basic)
        .await
        .assert_error(400, "invalid_grant");
    s.token(&login("alice", "not-her-password"), basic)
        .await
        .assert_error(400, "invalid_grant");
    s.token(&login("alice", "not-her-password"), basic)
        .await
        .assert_error(429, "temporarily_unavailable");
    assert_eq!(s.get("/no/such/path", None).await.status, 404);

    let (text, m) = scrape(&s).await;
    let req = |route: &str, status: &str| {
        value(
            &m,
            "tessera_http_requests_total",
            &[("route", route), ("method", "POST"), ("status", status)],
        )
    };
    assert_eq!(req("/token", "200"), 4.0, "{text}");
    assert_eq!(req("/token", "401"), 1.0, "{text}");
    assert_eq!(req("/token", "400"), 4.0, "{text}");
    assert_eq!(req("/token", "429"), 1.0, "{text}");
    assert_eq!(
        value(
            &m,
            "tessera_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0,
        "the raw path never becomes a label: {text}"
    );
    assert!(!text.contains("/no/such/path"), "{text}");
    let issued = |g| value(&m, "tessera_tokens_issued_total", &[("grant", g)]);
    assert_eq!(issued("client_credentials"), 2.0, "{text}");
    assert_eq!(issued("password"), 1.0, "{text}");
    assert_eq!(issued("refresh_token"), 1.0, "{text}");
    let err = |e| value(&m, "tessera_oauth_errors_total", &[("error", e)]);
    assert_eq!(err("invalid_client"), 1.0, "{text}");
    assert_eq!(err("invalid_grant"), 4.0, "{text}");
    assert_eq!(err("temporarily_unavailable"), 1.0, "{text}");
    assert_eq!(
        value(&m, "tessera_refresh_reuse_detected_total", &[]),
        1.0,
        "{text}"
    );
    let failed = |r| value(&m, "tessera_login_failures_total", &[("reason", r)]);
    // One reason for every cause (issue 14, item 5): the metric must not tell which
    // names exist.
    assert_eq!(failed("bad_credentials"), 3.0, "{text}");
    assert_eq!(failed("unknown_user"), 0.0, "{text}");
    assert_eq!(failed("wrong_password"), 0.0, "{text}");
    assert_eq!(
        value(&m, "tessera_throttled_requests_total", &[]),
        1.0,
        "{text}"
    );
    assert_eq!(value(&m, "tessera_store_errors_total", &[]), 0.0, "{text}");
    // The latency histogram: cumulative buckets ending at +Inf, whose count is the total.
    let token_buckets: Vec<&Sample> = m
        .iter()
        .filter(|x| x.name == "tessera_http_request_duration_seconds_bucket")
        .filter(|x| x.labels.get("route").map(String::as_str) == Some("/token"))
        .collect();
    assert!(token_buckets.len() > 5, "{text}");
    let inf = token_buckets
        .iter()
        .find(|b| b.labels["le"] == "+Inf")
        .unwrap();
    assert_eq!(inf.value, 10.0, "{text}");
    let counts: Vec<f64> = token_buckets.iter().map(|b| b.value).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{text}");
    // One active key per algorithm (EdDSA for access tokens, RS256 for ID tokens), young.
    let all: Vec<&Sample> = m
        .iter()
        .filter(|x| x.name == "tessera_signing_key_age_seconds")
        .collect();
    assert_eq!(all.len(), 2, "{text}");
    assert!(all.iter().any(|k| k.labels["alg"] == "RS256"), "{text}");
    let keys: Vec<&Sample> = all
        .into_iter()
        .filter(|k| k.labels["alg"] == "EdDSA")
        .collect();
    assert_eq!(keys.len(), 1, "{text}");
    assert_eq!(keys[0].labels["state"], "active");
    assert!(keys[0].value >= 0.0 && keys[0].value < 600.0, "{text}");

    // The scrape itself is counted by the next one.
    let (text, m) = scrape(&s).await;
    assert_eq!(
        value(
            &m,
            "tessera_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test]
async fn each_request_is_one_json_log_line_with_its_request_id_and_no_credentials() {
    let s = Server::start_with(
        "",
        &[("TESSERA_LOG_FORMAT", "json"), ("TESSERA_LOG", "info")],
    );
    let (id, secret) = s.add_client("svc", "client_credentials", "a", &[]);
    let secret = secret.unwrap();
    let r = s
        .http
        .post(s.url("/token"))
        .header("x-request-id", "e2e-req-0001")
        .header("authorization", crate::harness::basic_header(&id, &secret))
        .header("cookie", "session=cookie-value-never-logged")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "e2e-req-0001");
    let token: Value = r.json().await.unwrap();
    crate::harness::register_secrets_in(&token);
    // A refused token request: its refusal line is inside the request.
    let r = s
        .http
        .post(s.url("/token"))
        .header("x-request-id", "e2e-req-0002")
        .header("authorization", crate::harness::basic_header(&id, &secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // An id the server would not echo safely is replaced by a fresh one.
    let r = s
        .http
        .get(s.url("/healthz"))
        .header("x-request-id", "has spaces and \"quotes\"")
        .send()
        .await
        .unwrap();
    let fresh = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(fresh.starts_with("r_"), "{fresh}");

    let log = s.log_until(|l| l.matches(r#""message":"request""#).count() >= 3);
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|v| v["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 3, "{log}");
    // One line for the issuance: the request, its client and grant, and the token's
    // sid and jti (the issued token's own claims).
    let token_line = requests[0];
    let claims = crate::harness::jwt_claims(token["access_token"].as_str().unwrap());
    assert_eq!(token_line["span"]["request_id"], "e2e-req-0001", "{log}");
    assert_eq!(token_line["span"]["route"], "/token", "{log}");
    assert_eq!(token_line["span"]["method"], "POST", "{log}");
    assert_eq!(token_line["span"]["client_id"], id.as_str(), "{log}");
    assert_eq!(
        token_line["span"]["grant_type"], "client_credentials",
        "{log}"
    );
    assert_eq!(token_line["span"]["jti"], claims["jti"], "{log}");
    assert_eq!(token_line["span"]["sid"], claims["sid"], "{log}");
    assert_eq!(token_line["fields"]["status"], 200, "{log}");
    assert!(
        token_line["fields"]["latency_ms"].as_f64().is_some(),
        "{log}"
    );
    assert!(
        !lines
            .iter()
            .any(|v| v["fields"]["message"] == "access token issued"),
        "the issuance is the request line, not a second one at info: {log}"
    );
    assert_eq!(requests[1]["span"]["request_id"], "e2e-req-0002", "{log}");
    assert_eq!(requests[1]["fields"]["status"], 400, "{log}");
    assert_eq!(requests[2]["span"]["request_id"], fresh.as_str(), "{log}");
    assert_eq!(requests[2]["span"]["route"], "/healthz", "{log}");
    // Events inside a request (here the refusal) carry its request id.
    let refused = lines
        .iter()
        .find(|v| v["fields"]["message"] == "token request refused")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(refused["span"]["request_id"], "e2e-req-0002", "{log}");
    assert_eq!(refused["fields"]["error"], "unauthorized_client", "{log}");
    assert!(!log.contains("cookie-value-never-logged"), "{log}");
    assert!(!log.contains(&secret), "{log}");
    assert!(!log.contains("has spaces"), "{log}");
}

#[tokio::test]
async fn a_full_flow_at_trace_level_logs_no_secret() {
    // The harness runs every server at trace level and checks its log at drop; this test
    // makes the check explicit for a flow that uses every kind of secret at once.
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let s = Server::start_with("", &[("TESSERA_MASTER_KEY", key)]);
    let (id, secret) = s.add_client("web", "password,refresh_token", "a", &[]);
    let secret = secret.unwrap();
    s.add_user("alice", PASSWORD);
    let basic = Some((id.as_str(), secret.as_str()));
    let r = s
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            basic,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json);
    let (at, rt) = (r.str("access_token"), r.str("refresh_token"));
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            basic,
        )
        .await;
    assert_eq!(r.status, 200);
    let rt2 = r.str("refresh_token");
    let r = s.post_form("/introspect", &[("token", &at)], basic).await;
    assert_eq!(r.json["active"], true);
    s.post_form("/revoke", &[("token", &rt2)], basic).await;
    // Secrets sent where they do not belong are not echoed to the log either.
    s.token(
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", &secret),
        ],
        Some((id.as_str(), PASSWORD)),
    )
    .await
    .assert_error(401, "invalid_client");
    let log = s.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not at trace level: {log}"
    );
    for secret in [
        PASSWORD,
        secret.as_str(),
        at.as_str(),
        rt.as_str(),
        rt2.as_str(),
        key,
    ] {
        assert!(!log.contains(secret), "{secret:.10}... in the log:\n{log}");
    }
    assert!(secrets_in(&log).is_empty());
}

fn audit(s: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str::<Value>(&s.cli_ok(&all, None))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn audit_filters_by_user_and_time_and_flags_password_spraying() {
    let s = Server::start();
    let (id, secret) = s.add_client("web", "password", "a", &[]);
    let secret = secret.unwrap();
    let basic = Some((id.as_str(), secret.as_str()));
    s.add_user("alice", PASSWORD);
    s.add_user("bob", PASSWORD);
    let login = |user: &'static str, password: &'static str| {
        [
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ]
    };
    assert_eq!(s.token(&login("alice", PASSWORD), basic).await.status, 200);
    assert_eq!(s.token(&login("bob", PASSWORD), basic).await.status, 200);

    // One guess each against four accounts from one address: not yet a pattern.
    for user in ["alice", "bob", "carol", "dave"] {
        s.token(&login(user, "Summer2026!"), basic)
            .await
            .assert_error(400, "invalid_grant");
    }
    // The same account again does not count twice.
    s.token(&login("alice", "Winter2026!"), basic)
        .await
        .assert_error(400, "invalid_grant");
    assert!(!kinds(&audit(&s, &[])).contains(&"login.spray_suspected"));
    // The fifth distinct account does.
    s.token(&login("erin", "Summer2026!"), basic)
        .await
        .assert_error(400, "invalid_grant");
    s.token(&login("frank", "Summer2026!"), basic)
        .await
        .assert_error(400, "invalid_grant");
    let all = audit(&s, &[]);
    let spray: Vec<&Value> = all
        .iter()
        .filter(|e| e["kind"] == "login.spray_suspected")
        .collect();
    assert_eq!(spray.len(), 1, "flagged once per window: {all:?}");
    assert_eq!(spray[0]["detail"]["ip"], "127.0.0.1");
    assert_eq!(spray[0]["detail"]["accounts"], 5);
    let failure = all.iter().find(|e| e["kind"] == "login.failure").unwrap();
    assert_eq!(failure["detail"]["ip"], "127.0.0.1");

    // --user: only that user's events (their logins and failures), newest first.
    let alice = audit(&s, &["--user", "alice"]);
    assert_eq!(
        kinds(&alice),
        [
            "login.failure",
            "login.failure",
            "login.success",
            "user.add"
        ],
        "{alice:?}"
    );
    let user_id = alice[0]["user_id"].as_str().unwrap();
    assert!(alice.iter().all(|e| e["user_id"] == user_id));
    assert!(!kinds(&audit(&s, &["--user", "bob"])).is_empty());
    // --since: ages and absolute times; --limit keeps the newest.
    assert_eq!(audit(&s, &["--since", "1h"]).len(), all.len());
    assert!(audit(&s, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert_eq!(audit(&s, &["--user", "alice", "--since", "1h"]).len(), 4);
    let newest = audit(&s, &["--limit", "2"]);
    assert_eq!(newest, all[..2].to_vec());
    // The old spelling still works.
    assert_eq!(
        s.cli_ok(&["audit", "list", "--json", "--limit", "2"], None)
            .trim(),
        Value::from(newest).to_string()
    );
    // Errors: unknown user (4), malformed time (2).
    assert_eq!(
        s.cli(&["audit", "--user", "nobody"], None).status.code(),
        Some(4)
    );
    assert_eq!(
        s.cli(&["audit", "--since", "soon"], None).status.code(),
        Some(2)
    );
}

#[tokio::test]
async fn a_refresh_from_a_new_user_agent_is_audited() {
    let s = Server::start();
    let (id, secret) = s.add_client("web", "password,refresh_token", "a", &[]);
    let secret = secret.unwrap();
    s.add_user("alice", PASSWORD);
    let post = |agent: &'static str, form: Vec<(&'static str, String)>| {
        let req = s
            .http
            .post(s.url("/token"))
            .header("user-agent", agent)
            .header("authorization", crate::harness::basic_header(&id, &secret))
            .form(&form);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            crate::harness::register_secrets_in(&v);
            v["refresh_token"].as_str().unwrap().to_owned()
        }
    };
    let login = vec![
        ("grant_type", "password".to_owned()),
        ("username", "alice".to_owned()),
        ("password", PASSWORD.to_owned()),
    ];
    let refresh = |rt: String| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", rt),
        ]
    };
    let rt = post("notes-app/1.0", login).await;
    let rt = post("notes-app/1.0", refresh(rt)).await;
    let new_context = |s: &Server| {
        audit(s, &[])
            .into_iter()
            .filter(|e| e["kind"] == "refresh.new_context")
            .collect::<Vec<_>>()
    };
    assert!(new_context(&s).is_empty(), "same agent, same network");
    let rt = post("curl/8.0", refresh(rt)).await;
    let events = new_context(&s);
    assert_eq!(events.len(), 1, "{events:?}");
    let d = &events[0]["detail"];
    assert_eq!(d["previous_user_agent"], "notes-app/1.0");
    assert_eq!(d["user_agent"], "curl/8.0");
    assert_eq!(d["net"], "127.0.0.0/24");
    assert!(d["sid"].as_str().unwrap().starts_with("g_"));
    // The new context is now the family's: the next refresh from it is quiet.
    post("curl/8.0", refresh(rt)).await;
    assert_eq!(new_context(&s).len(), 1);
}
