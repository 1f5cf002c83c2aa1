//! A real `redis-server` (Debian's package, installed by `tools/test`) on a
//! free port, without persistence, killed when dropped. A test that needs
//! one fails when it cannot start: it never skips.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Certificates made with the `openssl` command for a TLS Redis on
/// 127.0.0.1: a private CA, the server's certificate, and a client's.
pub struct TlsFiles {
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub server: (PathBuf, PathBuf),
    /// A client's certificate and key, signed by the CA.
    pub client: (PathBuf, PathBuf),
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): install Debian's openssl"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsFiles {
    /// Makes them in `dir`.
    pub fn make(dir: &Path) -> TlsFiles {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=glurpc test CA",
                ],
            ]
            .concat(),
        );
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for name in ["server", "client"] {
            let (key, csr, crt, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            let subject = format!("/CN={name}");
            openssl(
                dir,
                &[
                    &["req"][..],
                    &ec,
                    &["-keyout", &key, "-out", &csr, "-subj", &subject],
                ]
                .concat(),
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        }
        TlsFiles {
            ca: dir.join("ca.crt"),
            server: (dir.join("server.crt"), dir.join("server.key")),
            client: (dir.join("client.crt"), dir.join("client.key")),
        }
    }
}

/// A running `redis-server`.
pub struct Redis {
    child: Child,
    /// Its port.
    pub port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True when `PING` on `port` answers `+PONG`.
pub fn pings(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Redis {
    /// Starts one on a free port.
    pub fn start() -> Redis {
        Redis::on(free_port())
    }

    /// Starts one on `port` and waits until it answers.
    pub fn on(port: u16) -> Redis {
        let bin = std::env::var("GLURPC_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): install Debian's redis-server (tools/test does)")
            });
        let started = Instant::now();
        while !pings(port) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    /// Starts one on a free port that speaks only TLS with `files`' server
    /// certificate and asks its clients for a certificate of their CA.
    pub fn tls(files: &TlsFiles) -> Redis {
        let port = free_port();
        let bin = std::env::var("GLURPC_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let path = |p: &PathBuf| p.to_str().unwrap().to_string();
        let mut child = Command::new(&bin)
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--tls-cert-file", &path(&files.server.0)])
            .args(["--tls-key-file", &path(&files.server.1)])
            .args(["--tls-ca-cert-file", &path(&files.ca)])
            .args(["--tls-auth-clients", "yes"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} ({e})"));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{bin} with TLS exited: {status} (a build without TLS?)");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    /// `rediss://127.0.0.1:PORT`, for [`Redis::tls`].
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
