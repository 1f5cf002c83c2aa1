//! How the command line ends (issue 21, items 7-9): distinct exit codes,
//! quiet success on a closed pipe, each cause said once, `--samples 0`
//! refused.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

fn glurpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_glurpc"))
}

#[test]
fn exit_codes_tell_what_went_wrong() {
    // usage
    let out = glurpc()
        .args(["convert", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = glurpc()
        .args(["predict", "--samples", "0"])
        .arg(common::data_dir().join("real/dexcom_us_14d.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "--samples 0 is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--samples"));
    // help is not an error
    let out = glurpc().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // a file that is not there
    let out = glurpc()
        .args(["convert", "/no/such/file.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    // an input refused
    let out = glurpc()
        .arg("convert")
        .arg(common::data_dir().join("../../Cargo.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}

#[test]
fn a_port_in_use_is_unavailable_and_said_once() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = glurpc()
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--rest-port",
            &port,
        ])
        .arg("--model")
        .arg(common::data_dir().join("model/small"))
        .args(["--enable-cache-persistence", "false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap();
    assert!(line.contains("cannot listen on 127.0.0.1:"), "{line}");
    assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = glurpc()
        .arg("convert")
        .arg(common::data_dir().join("real/libre_eu_1y.csv"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // read a little, as `head` does, then close the pipe
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 100];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.is_empty(), "{err}");
}

/// `--otlp-endpoint` on a build without the `otlp` feature is refused as
/// unavailable, naming the feature; with it, an endpoint that is not an
/// http(s) URL is a usage error.
#[test]
fn an_otlp_endpoint_needs_the_feature_and_a_url() {
    let serve = |endpoint: &str| {
        glurpc()
            .args([
                "serve",
                "--host",
                "127.0.0.1",
                "--grpc-port",
                "0",
                "--rest-port",
                "0",
            ])
            .arg("--model")
            .arg(common::data_dir().join("model/small"))
            .args(["--otlp-endpoint", endpoint])
            .output()
            .unwrap()
    };
    if cfg!(feature = "otlp") {
        let out = serve("collector:4318");
        assert_eq!(out.status.code(), Some(64));
        assert!(String::from_utf8_lossy(&out.stderr).contains("http:// or https://"));
    } else {
        let out = serve("http://127.0.0.1:4318");
        assert_eq!(out.status.code(), Some(69));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`otlp` feature"), "{err}");
    }
}
