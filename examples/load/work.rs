//! The measured requests: what each scenario sends, on either protocol, and
//! how its answer is checked.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use glurpc::proto;
use serde_json::{Value, json};

use crate::cold::ColdTemplate;
use crate::conn::{Conn, Target, body_error, read_rest, status_kind};

/// `/quick_plot`'s body: fine when its `error` is null or empty.
fn check_quick_plot_body(body: &[u8]) -> Result<(), String> {
    if body.ends_with(b"\"error\":null}") {
        return Ok(());
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| "unparsable body".to_string())?;
    match v.get("error") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(Value::String(s)) => Err(body_error(s)),
        Some(other) => Err(body_error(&other.to_string())),
    }
}

/// The work a scenario's requests do.
pub(crate) enum Work {
    Health,
    /// Cycles through windows `0..-(total-1)` of `handle`.
    Plot {
        handle: String,
        total: u64,
    },
    /// The same upload every time: the JSON body (REST) and its base64 (gRPC).
    QuickWarm {
        rest_body: bytes::Bytes,
        b64: String,
    },
    /// A new upload every time; the counter is shared by every client.
    QuickCold {
        template: ColdTemplate,
        next: AtomicU64,
    },
}

impl Work {
    /// One request by client `client`, its `seq`-th.
    pub(crate) async fn call(
        &self,
        t: &Target,
        conn: &mut Conn,
        client: u64,
        seq: u64,
    ) -> Result<(), String> {
        match (self, conn) {
            (Work::Health, Conn::Rest(http)) => {
                let mut rb = http.get(t.url("/health"));
                if let Some(k) = &t.rest_key {
                    rb = rb.header("X-API-Key", k);
                }
                read_rest(rb.send().await).await.map(drop)
            }
            (Work::Health, Conn::Grpc(g)) => g
                .check_health(t.grpc_request(proto::HealthRequest {}))
                .await
                .map(drop)
                .map_err(|s| status_kind(&s)),
            (Work::Plot { handle, total }, conn) => {
                let index = -(((client * 7919 + seq) % total) as i64);
                match conn {
                    Conn::Rest(http) => {
                        let body =
                            json!({"handle": handle, "index": index, "force_calculate": false});
                        t.post_json(http, "/draw_a_plot", body.to_string())
                            .await
                            .map(drop)
                    }
                    Conn::Grpc(g) => {
                        let req = proto::PlotRequest {
                            handle: handle.clone(),
                            index: index as i32,
                            force_calculate: false,
                        };
                        let r = g
                            .draw_plot(t.grpc_request(req))
                            .await
                            .map_err(|s| status_kind(&s))?
                            .into_inner();
                        if r.error.is_empty() {
                            Ok(())
                        } else {
                            Err(body_error(&r.error))
                        }
                    }
                }
            }
            (Work::QuickWarm { rest_body, b64 }, conn) => {
                quick_plot(t, conn, rest_body.clone(), b64.clone()).await
            }
            (Work::QuickCold { template, next }, conn) => {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let b64 = base64::engine::general_purpose::STANDARD.encode(template.render(k));
                let rest_body = match conn {
                    Conn::Rest(_) => quick_plot_body(&b64),
                    Conn::Grpc(_) => bytes::Bytes::new(),
                };
                quick_plot(t, conn, rest_body, b64).await
            }
        }
    }
}

pub(crate) fn quick_plot_body(b64: &str) -> bytes::Bytes {
    json!({"csv_base64": b64, "force_calculate": false})
        .to_string()
        .into()
}

async fn quick_plot(
    t: &Target,
    conn: &mut Conn,
    rest_body: bytes::Bytes,
    b64: String,
) -> Result<(), String> {
    match conn {
        Conn::Rest(http) => {
            let body = t.post_json(http, "/quick_plot", rest_body).await?;
            check_quick_plot_body(&body)
        }
        Conn::Grpc(g) => {
            let req = proto::QuickPlotRequest {
                csv_base64: b64,
                force_calculate: false,
            };
            let r = g
                .quick_plot(t.grpc_request(req))
                .await
                .map_err(|s| status_kind(&s))?
                .into_inner();
            if r.error.is_empty() {
                Ok(())
            } else {
                Err(body_error(&r.error))
            }
        }
    }
}
