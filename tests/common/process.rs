//! A `glurpc serve` process, as a person starts it: its REST address read
//! from the `glurpc ready: rest=...` line, the rest of its standard error
//! drained, and SIGKILL (`Child::kill` on Unix) when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `bin serve` on 127.0.0.1 with free REST and gRPC ports, API keys off
/// unless the caller's arguments turn them on.
pub fn serve_command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--host", "127.0.0.1", "--rest-port", "0"])
        .args(["--grpc-port", "0"])
        .env_remove("ENABLE_API_KEYS");
    cmd
}

/// A running server process.
pub struct Process {
    pub child: Child,
    /// `HOST:PORT` of REST.
    pub rest: String,
    /// `HOST:PORT` of gRPC, when it serves gRPC.
    pub grpc: Option<String>,
}

impl Process {
    /// Starts `cmd` and waits for its ready line.
    pub fn start(mut cmd: Command) -> Process {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("glurpc ready:"))
            .expect("the server did not start");
        let field = |name: &str| {
            ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        let (rest, grpc) = (field("rest=").unwrap(), field("grpc="));
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Process { child, rest, grpc }
    }

    /// `http://HOST:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.rest)
    }

    /// SIGKILL: no shutdown, no final write.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
