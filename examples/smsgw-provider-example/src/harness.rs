//! `linegw`'s conformance harness: a loopback sink speaking its protocol and a gateway
//! definition that sends to it, registered with [`smsgw_sinks::register_harness!`] so that any
//! `smsgw` binary linking this crate (with the `harness` feature) runs it in `smsgw demo`,
//! `smsgw sink` and `smsgw conformance`.

use std::net::SocketAddr;

use smsgw_core::GatewayDef;
use smsgw_sinks::conformance::{Harness, Setup};
use smsgw_sinks::{Fault, FaultPlan, Received, Recorder, SinkHandle, async_trait};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

smsgw_sinks::register_harness!(LineHarness);

/// A loopback `linegw` gateway that records what it receives.
pub struct LineSink {
    addr: SocketAddr,
    recorder: Recorder,
    faults: FaultPlan,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LineSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SinkHandle for LineSink {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }
    fn faults(&self) -> FaultPlan {
        self.faults.clone()
    }
}

/// Starts a [`LineSink`] on a free loopback port.
pub async fn start() -> LineSink {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let (recorder, faults) = (Recorder::new(), FaultPlan::default());
    let (rec, fp) = (recorder.clone(), faults.clone());
    let task = tokio::spawn(async move {
        let mut next_id = 0u64;
        while let Ok((sock, _)) = listener.accept().await {
            next_id += 1;
            let (rec, fp, id) = (rec.clone(), fp.clone(), next_id);
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut line = String::new();
                if BufReader::new(rd).read_line(&mut line).await.is_err() {
                    return;
                }
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    return;
                };
                let reply = match fp.next_request() {
                    Some(Fault::NeverAnswer) => return std::future::pending().await,
                    Some(Fault::Close) => return,
                    Some(Fault::Reply { code, text }) => format!("ERR {code} {text}\n"),
                    Some(Fault::Delay(d)) => {
                        tokio::time::sleep(d).await;
                        format!("OK m{id}\n")
                    }
                    _ => format!("OK m{id}\n"),
                };
                if reply.starts_with("OK") {
                    rec.record(Received {
                        protocol: "linegw".into(),
                        recipient: v["to"].as_str().unwrap_or_default().into(),
                        text: v["text"].as_str().unwrap_or_default().into(),
                        detail: v,
                    });
                }
                let _ = wr.write_all(reply.as_bytes()).await;
            });
        }
    });
    LineSink {
        addr,
        recorder,
        faults,
        task,
    }
}

/// Drives `linegw` in smsgw's conformance suite, `smsgw demo`, `smsgw sink` and
/// `smsgw conformance`.
pub struct LineHarness;

#[async_trait]
impl Harness for LineHarness {
    fn provider(&self) -> &'static str {
        "linegw"
    }
    async fn start_sink(&self) -> Box<dyn SinkHandle> {
        Box::new(start().await)
    }
    fn definition(&self, addr: SocketAddr, timeout_secs: f64) -> Setup {
        let mut g = GatewayDef {
            id: "line".into(),
            provider: "linegw".into(),
            ..Default::default()
        };
        for (k, v) in [
            ("HOST", addr.ip().to_string()),
            ("PORT", addr.port().to_string()),
            ("TOKEN", "tok-example-secret".to_owned()),
            ("TIMEOUT", timeout_secs.to_string()),
        ] {
            g.options.insert(k.into(), v);
        }
        Setup::new(g)
    }
    fn promises_message_ids(&self) -> bool {
        true
    }
    fn secrets(&self) -> Vec<String> {
        vec!["tok-example-secret".into()]
    }
}
