//! HTTP behaviour through the same `configure()` the binary uses, in process; plus one smoke
//! test of the real binary on 127.0.0.1:0 with a real HTTP client.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{App, test as atest, web};
use arc_swap::ArcSwap;
use feedsmith::server::{self, AppState};
use feedsmith::snapshot::Snapshot;

use crate::support::{self, Bin, Site};

const CACHE_CONTROL: &str = "max-age=300, stale-while-revalidate=3600";

/// Server state over one snapshot.
fn state(snapshot: Arc<Snapshot>) -> AppState {
    AppState::new(Arc::new(ArcSwap::new(snapshot)), CACHE_CONTROL)
}

/// The app the binary serves, in process, over `state`.
async fn app_for(
    state: AppState,
) -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse,
    Error = actix_web::Error,
> {
    atest::init_service(App::new().configure(server::configure(web::Data::new(state)))).await
}

/// The app over the sample site.
pub(crate) async fn app() -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse,
    Error = actix_web::Error,
> {
    app_for(state(support::build(&support::sample_config()))).await
}

pub(crate) fn header_of(
    resp: &actix_web::dev::ServiceResponse,
    name: header::HeaderName,
) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default()
}

pub(crate) async fn get(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    path: &str,
    headers: &[(&str, &str)],
) -> actix_web::dev::ServiceResponse {
    let mut req = atest::TestRequest::get().uri(path);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    atest::call_service(app, req.to_request()).await
}

fn assert_validators(resp: &actix_web::dev::ServiceResponse) {
    assert!(
        header_of(resp, header::ETAG).starts_with('"'),
        "ETag on {}",
        resp.status()
    );
    assert_eq!(
        header_of(resp, header::LAST_MODIFIED),
        "Wed, 20 Nov 2024 16:00:00 GMT"
    );
    assert_eq!(header_of(resp, header::CACHE_CONTROL), CACHE_CONTROL);
    assert_eq!(header_of(resp, header::VARY), "Accept-Encoding");
}

#[actix_web::test]
async fn returns_200_with_type_validators_and_exact_length() {
    let app = app().await;
    for (path, ctype) in [
        ("/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
        (
            "/tags/openeuler/rss.xml",
            "application/rss+xml; charset=utf-8",
        ),
        (
            "/categories/news/feed.json",
            "application/feed+json; charset=utf-8",
        ),
        ("/feeds.opml", "text/x-opml; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
    ] {
        let resp = get(&app, path, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(header_of(&resp, header::CONTENT_TYPE), ctype, "{path}");
        assert_validators(&resp);
        assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
        let body = atest::read_body(resp).await;
        assert!(!body.is_empty());
    }
    let index = atest::read_body(get(&app, "/", &[]).await).await;
    let index = String::from_utf8(index.to_vec()).expect("utf-8");
    assert!(index.contains("<link rel=\"alternate\" type=\"application/rss+xml\""));
    assert!(index.contains("href=\"tags/openeuler/atom.xml\""));
}

#[actix_web::test]
async fn returns_304_by_if_none_match_exact_weak_list_and_star() {
    let app = app().await;
    let etag = header_of(&get(&app, "/rss.xml", &[]).await, header::ETAG);
    let weak = format!("W/{etag}");
    let list = format!("\"nope\", {etag}, \"other\"");
    for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let resp = get(&app, "/rss.xml", &[("If-None-Match", inm)]).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{inm}");
        assert_validators(&resp);
        assert_eq!(header_of(&resp, header::ETAG), etag);
        assert!(atest::read_body(resp).await.is_empty());
    }
}

#[actix_web::test]
async fn returns_304_by_if_modified_since_only_without_if_none_match() {
    let app = app().await;
    for ims in [
        "Wed, 20 Nov 2024 16:00:00 GMT",
        "Thu, 21 Nov 2024 00:00:00 GMT",
    ] {
        let resp = get(&app, "/rss.xml", &[("If-Modified-Since", ims)]).await;
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{ims}");
        assert_validators(&resp);
    }
    let older = get(
        &app,
        "/rss.xml",
        &[("If-Modified-Since", "Wed, 20 Nov 2024 15:59:59 GMT")],
    )
    .await;
    assert_eq!(older.status(), StatusCode::OK);
    // A mismatching If-None-Match wins over a matching If-Modified-Since (RFC 9110 §13.2.2).
    let resp = get(
        &app,
        "/rss.xml",
        &[
            ("If-None-Match", "\"stale\""),
            ("If-Modified-Since", "Thu, 21 Nov 2024 00:00:00 GMT"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn malformed_conditional_headers_are_ignored() {
    let app = app().await;
    for (name, value) in [
        ("If-None-Match", "not-a-quoted-tag"),
        ("If-Modified-Since", "yesterday"),
        ("Accept-Encoding", ";;q=x,,"),
    ] {
        let resp = get(&app, "/rss.xml", &[(name, value)]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{name}: {value}");
    }
}

#[actix_web::test]
async fn negotiates_precompressed_encodings_with_q_values() {
    let app = app().await;
    let identity = atest::read_body(get(&app, "/rss.xml", &[]).await).await;
    let cases = [
        ("gzip", Some("gzip")),
        ("br", Some("br")),
        ("gzip, br", Some("br")),
        ("br;q=0.5, gzip;q=0.9", Some("gzip")),
        ("br;q=0, gzip", Some("gzip")),
        ("br;q=0, gzip;q=0", None),
        ("*", Some("br")),
        ("*;q=0.1, br;q=0", Some("gzip")),
        ("identity", None),
        ("deflate", None),
        ("zstd, identity;q=0.5", None),
    ];
    for (accept, expected) in cases {
        let resp = get(&app, "/rss.xml", &[("Accept-Encoding", accept)]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{accept}");
        let ce = resp
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| v.to_str().expect("ascii").to_string());
        assert_eq!(ce.as_deref(), expected, "{accept}");
        assert_eq!(header_of(&resp, header::VARY), "Accept-Encoding");
        let body = atest::read_body(resp).await;
        let decoded = match expected {
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut out)
                    .expect("gunzip");
                out
            }
            Some("br") => {
                let mut out = Vec::new();
                brotli::Decompressor::new(&body[..], 4096)
                    .read_to_end(&mut out)
                    .expect("unbrotli");
                out
            }
            _ => body.to_vec(),
        };
        assert_eq!(decoded, identity, "{accept}: same content");
    }
}

#[actix_web::test]
async fn each_encoding_has_its_own_etag_and_any_of_them_revalidates() {
    let app = app().await;
    let plain = header_of(&get(&app, "/rss.xml", &[]).await, header::ETAG);
    let gz = header_of(
        &get(&app, "/rss.xml", &[("Accept-Encoding", "gzip")]).await,
        header::ETAG,
    );
    assert_ne!(plain, gz);
    let resp = get(
        &app,
        "/rss.xml",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &gz)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_of(&resp, header::ETAG), gz);
}

#[actix_web::test]
async fn head_returns_get_headers_without_body() {
    let app = app().await;
    let got = get(&app, "/atom.xml", &[]).await;
    let req = atest::TestRequest::default()
        .method(actix_web::http::Method::HEAD)
        .uri("/atom.xml")
        .to_request();
    let head = atest::call_service(&app, req).await;
    assert_eq!(head.status(), StatusCode::OK);
    for name in [
        header::ETAG,
        header::LAST_MODIFIED,
        header::CONTENT_TYPE,
        header::CACHE_CONTROL,
        header::VARY,
    ] {
        assert_eq!(
            header_of(&head, name.clone()),
            header_of(&got, name.clone()),
            "{name}"
        );
    }
}

#[actix_web::test]
async fn other_methods_get_405_with_allow() {
    let app = app().await;
    for method in [
        actix_web::http::Method::POST,
        actix_web::http::Method::PUT,
        actix_web::http::Method::DELETE,
        actix_web::http::Method::OPTIONS,
    ] {
        let req = atest::TestRequest::default()
            .method(method.clone())
            .uri("/rss.xml")
            .to_request();
        let resp = atest::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header_of(&resp, header::ALLOW), "GET, HEAD");
    }
}

#[actix_web::test]
async fn traversal_attempts_and_unknown_paths_are_plain_404s() {
    let app = app().await;
    let long = format!("/{}", "a".repeat(4096));
    for path in [
        "/nope.xml",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/tags/%2e%2e/%2e%2e/rss.xml",
        "//rss.xml",
        "/rss.xml%00",
        "/tags/",
        "/src/main.rs",
        long.as_str(),
    ] {
        let resp = get(&app, path, &[]).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        let body = atest::read_body(resp).await;
        assert!(String::from_utf8_lossy(&body).contains("/"), "{path}");
    }
}

#[actix_web::test]
async fn percent_encoded_unicode_tag_paths_work() {
    let site = Site::new();
    site.post("a.md", "A", "2024-01-01", &["内核", "C++"], "x");
    let config = site.config("");
    let app = app_for(state(support::build(&config))).await;
    for path in [
        "/tags/%E5%86%85%E6%A0%B8/rss.xml",
        "/tags/c%2B%2B/atom.xml",
        "/tags/c++/feed.json",
    ] {
        assert_eq!(
            get(&app, path, &[]).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
}

#[actix_web::test]
async fn healthz_reports_generation_and_counts() {
    let app = app().await;
    let resp = get(&app, "/healthz", &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let json: serde_json::Value =
        serde_json::from_slice(&atest::read_body(resp).await).expect("json");
    assert_eq!(json["status"], "ok");
    assert_eq!(json["generation"], 1);
    assert_eq!(json["posts"], 5);
    assert_eq!(json["feeds"], 3);
}

#[actix_web::test]
async fn etags_are_equal_across_two_builds_of_the_same_content() {
    let a = app().await;
    let b = app().await;
    for path in ["/rss.xml", "/tags/openeuler/atom.xml", "/feed.json"] {
        for enc in ["identity", "gzip", "br"] {
            let ea = header_of(
                &get(&a, path, &[("Accept-Encoding", enc)]).await,
                header::ETAG,
            );
            let eb = header_of(
                &get(&b, path, &[("Accept-Encoding", enc)]).await,
                header::ETAG,
            );
            assert_eq!(ea, eb, "{path} {enc}");
        }
    }
}

#[test]
fn the_real_binary_serves_a_feed_to_a_real_http_client() {
    let server = Bin::new()
        .config("config.toml")
        .cwd(support::root())
        .env("RUST_LOG", "warn")
        .timeout(Duration::from_secs(60))
        .serve();
    let url = |path: &str| server.url(path);
    let (status, etag, body) = support::fetch(&url("rss.xml"));
    assert_eq!(status, 200);
    let body = String::from_utf8(body).expect("utf-8");
    assert!(body.contains("<rss version=\"2.0\""));
    let resp = ureq::get(&url("rss.xml"))
        .header("If-None-Match", &etag)
        .call()
        .expect("conditional GET");
    assert_eq!(resp.status(), 304);
    // Content-Length is set by the HTTP layer: check it on the wire for each coding.
    for coding in ["gzip", "br", "identity"] {
        let mut resp = ureq::get(&url("tags/openeuler/atom.xml"))
            .header("Accept-Encoding", coding)
            .call()
            .expect("GET");
        let length: usize = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("content-length");
        let body = support::read_body(&mut resp);
        assert_eq!(length, body.len(), "{coding}");
    }
    // SIGHUP reloads instead of killing; SIGTERM shuts down gracefully with exit code 0.
    server.signal("-HUP");
    let resp = ureq::get(&url("healthz"))
        .call()
        .expect("still serving after SIGHUP");
    assert_eq!(resp.status(), 200);
    let resp = ureq::head(&url("feed.json")).call().expect("HEAD");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_some());
    server.signal("-TERM");
    let status = server.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
}

#[actix_web::test]
async fn brotli_is_offered_only_once_its_body_is_ready() {
    let config = support::sample_config();
    let loaded = feedsmith::content::load(&config).expect("loads");
    let snap = Arc::new(support::build_loaded(&config, &loaded));
    let app = app_for(state(snap.clone())).await;
    let before = get(&app, "/rss.xml", &[("Accept-Encoding", "br, gzip")]).await;
    assert_eq!(header_of(&before, header::CONTENT_ENCODING), "gzip");
    feedsmith::snapshot::fill_brotli(&snap);
    let after = get(&app, "/rss.xml", &[("Accept-Encoding", "br, gzip")]).await;
    assert_eq!(header_of(&after, header::CONTENT_ENCODING), "br");
}

#[actix_web::test]
async fn brotli_is_made_on_demand_and_identity_is_kept_only_within_its_budget() {
    let config = support::sample_config();
    let loaded = feedsmith::content::load(&config).expect("loads");
    let snap = Arc::new(support::build_loaded(&config, &loaded));
    let (queue, queued) = feedsmith::snapshot::BrotliQueue::new();
    let mut state = state(snap.clone());
    state.brotli = Some(queue);
    state.update(|s| s.identity_cache_bytes = 0);
    let app = app_for(state).await;
    let br = [("accept-encoding", "br, gzip")];

    // No brotli body yet: gzip now, and the file is queued for the background thread once.
    for _ in 0..2 {
        let resp = get(&app, "/rss.xml", &br).await;
        assert_eq!(header_of(&resp, header::CONTENT_ENCODING), "gzip");
    }
    let file = queued.try_recv().expect("queued for brotli");
    assert!(queued.try_recv().is_none(), "queued once");
    assert!(Arc::ptr_eq(&file, &snap.files["rss.xml"]));
    file.fill_brotli();
    let resp = get(&app, "/rss.xml", &br).await;
    assert_eq!(header_of(&resp, header::CONTENT_ENCODING), "br");
    let mut body = Vec::new();
    brotli::Decompressor::new(&atest::read_body(resp).await[..], 4096)
        .read_to_end(&mut body)
        .expect("brotli");
    assert_eq!(body, file.decompress());

    // Clients that do not take brotli queue nothing.
    get(&app, "/atom.xml", &[("accept-encoding", "gzip")]).await;
    assert!(queued.try_recv().is_none());

    // Identity past the budget: the right bytes, decompressed for the request, not kept.
    let resp = get(&app, "/atom.xml", &[]).await;
    assert_eq!(header_of(&resp, header::CONTENT_ENCODING), "");
    assert_eq!(
        atest::read_body(resp).await.to_vec(),
        snap.files["atom.xml"].decompress()
    );
    assert!(!snap.files["atom.xml"].identity_is_kept());
}

/// `rel="self"` (RSS and Atom) and `feed_url` (JSON Feed) of a feed document.
fn self_link(body: &str, json: bool) -> String {
    if json {
        let value: serde_json::Value = serde_json::from_str(body).expect("JSON Feed");
        return value["feed_url"].as_str().expect("feed_url").to_string();
    }
    let doc = roxmltree::Document::parse(body).expect("XML");
    doc.descendants()
        .find(|n| n.tag_name().name() == "link" && n.attribute("rel") == Some("self"))
        .and_then(|n| n.attribute("href"))
        .expect("a rel=self link")
        .to_string()
}

#[test]
fn self_links_are_the_urls_the_feeds_are_served_at_under_a_path_prefix() {
    let port = support::free_port();
    let public = format!("http://127.0.0.1:{port}/feeds/");
    let site = Site::new();
    site.post("en/a b.md", "A", "2024-01-01", &["内核", "C++"], "one")
        .post("zh/b.md", "B", "2024-01-02", &["内核"], "two");
    let config = support::config_text(
        site.dir(),
        &format!(
            "[content]\nlanguages = [\"en\", \"zh\"]\n[site]\nbase_url = \"https://www.example.org/blog/\"\n[server]\npublic_url = \"{public}\"\n"
        ),
    );
    let _server = Bin::new()
        .config_text(&config)
        .env("RUST_LOG", "warn")
        .timeout(Duration::from_secs(60))
        .serve_on(&format!("127.0.0.1:{port}"));
    // Every feed listed in the OPML, in every format, at its public URL.
    let (status, _, opml) = support::fetch(&format!("{public}feeds.opml"));
    assert_eq!(status, 200);
    let opml = String::from_utf8(opml).expect("utf-8");
    let doc = roxmltree::Document::parse(&opml).expect("OPML");
    let rss_urls: Vec<String> = doc
        .descendants()
        .filter_map(|n| n.attribute("xmlUrl"))
        .map(str::to_string)
        .collect();
    assert_eq!(rss_urls.len(), 5, "{rss_urls:?}");
    for rss in &rss_urls {
        assert!(rss.starts_with(&public), "{rss}");
        let dir = rss.strip_suffix("rss.xml").expect("rss.xml");
        for (file, json) in [("rss.xml", false), ("atom.xml", false), ("feed.json", true)] {
            let url = format!("{dir}{file}");
            let (status, _, body) = support::fetch(&url);
            assert_eq!(status, 200, "{url}");
            let body = String::from_utf8(body).expect("utf-8");
            assert_eq!(self_link(&body, json), url);
            // The same file without the prefix, for a proxy that strips it.
            let bare = url.replacen("/feeds/", "/", 1);
            let (status, _, same) = support::fetch(&bare);
            assert_eq!((status, same), (200, body.into_bytes()), "{bare}");
        }
    }
    // Post links stay on the site's base URL; the Atom id does not move with the feeds.
    let (_, _, atom) = support::fetch(&format!("{public}en/atom.xml"));
    let atom = String::from_utf8(atom).expect("utf-8");
    assert!(
        atom.contains("<id>https://www.example.org/blog/en/atom.xml</id>"),
        "{atom}"
    );
    assert!(
        atom.contains("href=\"https://www.example.org/blog/en/a%20b.html\""),
        "{atom}"
    );
    let (status, _, _) = support::fetch(&format!("{public}healthz"));
    assert_eq!(status, 200);
}
