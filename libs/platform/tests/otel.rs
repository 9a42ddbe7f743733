//! OpenTelemetry export when configured: spans reach an OTLP/HTTP collector (a real HTTP server
//! in this test) as protobuf, named and attributed to the service. Its own test binary, because it
//! installs the process-wide subscriber.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use platform::telemetry::{LogSettings, init, otlp_traces_url};

#[test]
fn traces_url_appends_the_signal_path_once() {
    assert_eq!(otlp_traces_url("http://c:4318"), "http://c:4318/v1/traces");
    assert_eq!(otlp_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
    assert_eq!(
        otlp_traces_url("http://c:4318/v1/traces"),
        "http://c:4318/v1/traces"
    );
}

#[test]
fn spans_are_exported_to_the_collector() {
    // (content type, body) of each export request.
    type Exports = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Exports = Arc::default();
    let sink = received.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = runtime.block_on(async move {
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: Bytes| {
                let sink = sink.clone();
                async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    sink.lock().unwrap().push((ct, body.to_vec()));
                    ""
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });

    let settings = LogSettings {
        otlp_endpoint: Some(format!("http://{addr}")),
        ..LogSettings::default()
    };
    let guard = init(&settings, "otel-test-service");
    assert!(guard.exporting());
    {
        let span = tracing::info_span!("otel-test-span", performance_id = "perf-otel-42");
        let _enter = span.enter();
        tracing::info!("inside the span");
    }
    drop(guard); // flushes the batch

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no OTLP request arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = received.lock().unwrap();
    for (content_type, _) in got.iter() {
        assert_eq!(content_type, "application/x-protobuf");
    }
    // The protobuf carries names and values as plain bytes.
    let bodies: Vec<u8> = got.iter().flat_map(|(_, body)| body.clone()).collect();
    let text = String::from_utf8_lossy(&bodies);
    assert!(text.contains("otel-test-span"), "span name in the export");
    assert!(
        text.contains("service.name") && text.contains("otel-test-service"),
        "service name in the resource"
    );
    assert!(
        text.contains("performance_id") && text.contains("perf-otel-42"),
        "the span's field as an attribute"
    );
    assert!(
        text.contains("inside the span"),
        "the event inside it as a span event"
    );
}
