//! The gRPC front end over a real server, driven by tonic clients: the six
//! reference methods and their error codes, the same handle and forecast
//! as REST, the forward forecast, streaming, health and reflection, and
//! SNET's unknown metadata.

mod common;

use common::server::{Setup, TestServer, b64};
use futures_util::StreamExt;
use glurpc::proto;
use serde_json::{Value, json};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_methods_match_rest() {
    let s = TestServer::start(Setup::small()).await;
    let mut c = s.grpc().await;
    let raw = common::dexcom_14d();

    let conv = c
        .convert_to_unified(proto::ConvertToUnifiedRequest {
            file_content: raw.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(conv.error.is_empty());
    let bad = c
        .convert_to_unified(proto::ConvertToUnifiedRequest {
            file_content: b"invalid data".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bad.csv_content.is_empty() && bad.error.starts_with("Unknown CGM data format"));
    // Messages well above gRPC's default 4 MiB are accepted.
    let big = c
        .convert_to_unified(proto::ConvertToUnifiedRequest {
            file_content: vec![b'z'; 6 << 20],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        big.error.starts_with("Unknown CGM data format"),
        "{}",
        big.error
    );

    // SNET forwards its payment metadata: it must be ignored.
    let mut req = tonic::Request::new(proto::ProcessUnifiedRequest {
        csv_base64: b64(&raw),
        force_calculate: false,
    });
    req.metadata_mut()
        .insert("snet-payment-type", "escrow".parse().unwrap());
    req.metadata_mut()
        .insert("snet-payment-channel-id", "7".parse().unwrap());
    let p = c.process_unified(req).await.unwrap().into_inner();
    assert_eq!(p.total_samples, 110);
    assert!(p.warnings.as_ref().unwrap().imputation);
    let rest: Value = s
        .http
        .post(s.url("/process_unified"))
        .json(&json!({"csv_base64": b64(conv.csv_content.as_bytes())}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["handle"], p.handle.as_str());

    let bad = c
        .process_unified(proto::ProcessUnifiedRequest {
            csv_base64: b64(b"nope"),
            force_calculate: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(bad.handle.is_empty() && bad.total_samples == 0 && !bad.error.is_empty());

    // The same forecast over both protocols.
    let plot = c
        .draw_plot(proto::PlotRequest {
            handle: p.handle.clone(),
            index: -7,
            force_calculate: false,
        })
        .await
        .unwrap()
        .into_inner();
    let rest_fig: Value = s
        .http
        .post(s.url("/draw_a_plot"))
        .json(&json!({"handle": p.handle, "index": -7}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grpc_fig: Value = serde_json::from_str(&plot.plot_json).unwrap();
    assert_eq!(grpc_fig, rest_fig);

    let err = |r: Result<tonic::Response<proto::PlotResponse>, tonic::Status>| r.unwrap_err();
    let e = err(c
        .draw_plot(proto::PlotRequest {
            handle: "ab".repeat(32),
            index: 0,
            force_calculate: false,
        })
        .await);
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "Handle not found or expired")
    );
    let e = err(c
        .draw_plot(proto::PlotRequest {
            handle: p.handle.clone(),
            index: -200,
            force_calculate: false,
        })
        .await);
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "Index -200 out of range. Valid range: -109 to 0"
        )
    );
    let e = err(c
        .draw_plot(proto::PlotRequest {
            handle: p.handle.clone(),
            index: 3,
            force_calculate: false,
        })
        .await);
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(
        e.message(),
        "Positive indices not supported. Use negative indexing: 0 (last) to -109 (first)"
    );

    let q = c
        .quick_plot(proto::QuickPlotRequest {
            csv_base64: b64(&raw),
            force_calculate: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(q.error.is_empty());
    let fig: Value = serde_json::from_str(&q.plot_json).unwrap();
    assert_eq!(fig["layout"]["title"]["text"], "Gluformer Prediction");
    let q = c
        .quick_plot(proto::QuickPlotRequest {
            csv_base64: "%%%".into(),
            force_calculate: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(q.plot_json.is_empty() && q.error.starts_with("Failed to decode base64 data"));

    let info = c
        .manage_cache(proto::CacheManagementRequest {
            action: "info".into(),
            handle: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.success && info.items_affected == 0);
    let e = c
        .manage_cache(proto::CacheManagementRequest {
            action: "delete".into(),
            handle: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "Handle parameter required for delete action"
        )
    );
    let e = c
        .manage_cache(proto::CacheManagementRequest {
            action: "zap".into(),
            handle: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Health: real statistics, shared with REST.
    let h = c
        .check_health(proto::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((h.status.as_str(), h.device.as_str()), ("ok", "cpu"));
    assert!(h.models_initialized);
    assert!(h.total_http_requests >= 12, "{h:?}");
    assert!(h.total_http_errors >= 5, "{h:?}");
    assert!(h.avg_request_time_ms > 0.0 && h.max_request_time_ms >= h.min_request_time_ms);
    assert!(h.inference_requests_by_priority.contains_key(&0));

    // Forward forecast.
    let f = c
        .forecast(proto::ForecastRequest {
            handle: p.handle.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(f.content_type, "application/json");
    let fj: Value = serde_json::from_slice(&f.body).unwrap();
    assert!(fj["actual"].is_null());
    let rest_f: Value = s
        .http
        .post(s.url("/forecast"))
        .json(&json!({"handle": p.handle}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fj, rest_f);
    let e = c
        .forecast(proto::ForecastRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_health_service_and_reflection() {
    let s = TestServer::start(Setup::small()).await;
    let mut c = s.grpc().await;
    let raw = common::dexcom_14d();
    let p = c
        .process_unified(proto::ProcessUnifiedRequest {
            csv_base64: b64(&raw),
            force_calculate: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut stream = c
        .stream_forecasts(proto::StreamForecastsRequest {
            handle: p.handle.clone(),
            format: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = std::collections::BTreeSet::new();
    let mut finals = 0;
    while let Some(m) = stream.next().await {
        let m = m.unwrap();
        assert!(m.error.is_empty());
        assert_eq!((m.total, m.handle.as_str()), (110, p.handle.as_str()));
        let j: Value = serde_json::from_str(&m.forecast_json).unwrap();
        assert_eq!(j["index"], m.index);
        assert!(seen.insert(m.index));
        finals += m.r#final as usize;
        if m.r#final {
            assert_eq!(seen.len(), 110);
        }
    }
    assert_eq!((seen.len(), finals), (110, 1));
    let e = c
        .stream_forecasts(proto::StreamForecastsRequest {
            handle: "0".repeat(64),
            format: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .stream_forecasts(proto::StreamForecastsRequest {
            handle: p.handle.clone(),
            format: "png".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // The middleware counted the streams by their final status (trailers).
    let m = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("endpoint=\"StreamForecasts\",status=\"Ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("endpoint=\"StreamForecasts\",status=\"NotFound\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("endpoint=\"StreamForecasts\",status=\"InvalidArgument\"} 1"),
        "{m}"
    );

    // grpc.health.v1 for "", the service and the SNET id.
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut health = HealthClient::new(s.channel().await);
    for service in ["", "glurpc.GlucosePrediction", "glucose_forecast"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Reflection lists the service.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(s.channel().await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = refl
        .server_reflection_info(futures_util::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"glurpc.GlucosePrediction".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );

    // ... and in v1alpha, which grpcio-reflection's Python client and many tools still use.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut refl = ServerReflectionClient::new(s.channel().await);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "glurpc.GlucosePrediction".into(),
            )),
        };
        let reply = refl
            .server_reflection_info(futures_util::stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner()
            .next()
            .await
            .unwrap()
            .unwrap();
        let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
            panic!("unexpected v1alpha reflection reply: {reply:?}");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
    s.stop().await;
}
