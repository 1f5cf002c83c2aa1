//! The deploy kit (`deploy/`), checked as far as it can be without Docker or Kubernetes:
//! every YAML and JSON file parses; every environment variable, flag and subcommand the
//! Dockerfile, compose file, Kubernetes manifests and README give glurpc is one the test
//! binary accepts (`glurpc serve --help`); the ports, the gRPC health service names and
//! the Redis address agree across files and with the binary's defaults; the Dockerfile
//! has its stages, a non-root USER, a healthcheck, and copies everything
//! `cargo build --release` reads past `.dockerignore`; and the health-check script really
//! tells a running `glurpc serve` from a closed port or an error status.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use regex::Regex;
use yaml_rust2::{Yaml, YamlLoader};

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir`, relative to the repository root, sorted.
fn files_under(dir: &str) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &root().join(dir), &mut out);
    out.sort();
    out
}

fn yaml_docs(rel: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn s(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(v) | Yaml::Real(v) => Some(v.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// `KEY: value` pairs of a YAML mapping.
fn entries(y: &Yaml) -> Vec<(String, &Yaml)> {
    y.as_hash()
        .map(|h| h.iter().filter_map(|(k, v)| Some((s(k)?, v))).collect())
        .unwrap_or_default()
}

/// What the binary's `serve` accepts, read from `glurpc serve --help`.
struct Cli {
    /// Long flags, `--rest-port`.
    flags: BTreeSet<String>,
    /// Environment variables clap reads, `GLURPC_REST_PORT`.
    envs: BTreeSet<String>,
    /// Flag -> its `[default: ...]`.
    defaults: BTreeMap<String, String>,
    /// Subcommands of `glurpc`.
    commands: BTreeSet<String>,
}

/// Variables read outside clap (logging, the GEMM kernel, the Hub cache), each checked to
/// be named in the source below (HF_HOME is read by hf-hub; source.rs documents it).
const OTHER_ENVS: &[(&str, &str)] = &[
    ("GLURPC_LOG", "src/main.rs"),
    ("GLURPC_LOG_JSON", "src/cli/serve.rs"),
    ("NO_COLOR", "src/main.rs"),
    ("GLURPC_GEMM", "crates/glurpc-gemm/src/select.rs"),
    // read by hf-hub (the Hub cache of `--model owner/name`); named in the docs
    ("HF_HOME", "src/model/source.rs"),
];

fn cli() -> &'static Cli {
    static CLI: OnceLock<Cli> = OnceLock::new();
    CLI.get_or_init(|| {
        let bin = env!("CARGO_BIN_EXE_glurpc");
        let run = |args: &[&str]| {
            // No inherited settings: `[env: NAME=value]` would show their values.
            let out = Command::new(bin).args(args).env_clear().output().unwrap();
            assert!(out.status.success(), "glurpc {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let help = run(&["serve", "--help"]);
        let flag_re = Regex::new(r"^\s*(?:-[a-zA-Z], )?(--[a-z0-9][a-z0-9-]*)").unwrap();
        let env_re = Regex::new(r"\[env: ([A-Za-z0-9_]+)=").unwrap();
        let default_re = Regex::new(r"\[default: ([^\]]*)\]").unwrap();
        let mut cli = Cli {
            flags: BTreeSet::new(),
            envs: BTreeSet::new(),
            defaults: BTreeMap::new(),
            commands: BTreeSet::new(),
        };
        let mut current = None;
        for line in help.lines() {
            if let Some(c) = flag_re.captures(line) {
                let flag = c[1].to_string();
                cli.flags.insert(flag.clone());
                current = Some(flag);
            }
            if let Some(c) = env_re.captures(line) {
                cli.envs.insert(c[1].to_string());
            }
            if let (Some(c), Some(flag)) = (default_re.captures(line), &current) {
                cli.defaults.insert(flag.clone(), c[1].to_string());
            }
        }
        assert!(cli.flags.contains("--rest-port"), "{help}");
        assert!(cli.envs.contains("GLURPC_REST_PORT"), "{help}");
        let top = run(&["--help"]);
        let mut in_commands = false;
        for line in top.lines() {
            if line.starts_with("Commands:") {
                in_commands = true;
            } else if in_commands {
                match line.split_whitespace().next() {
                    Some(w) if line.starts_with("  ") => {
                        cli.commands.insert(w.to_string());
                    }
                    _ => in_commands = false,
                }
            }
        }
        assert!(cli.commands.contains("serve"), "{top}");
        for (name, file) in OTHER_ENVS {
            assert!(
                Regex::new(&format!(r"\b{name}\b"))
                    .unwrap()
                    .is_match(&read(file)),
                "{name} is no longer read in {file}: update OTHER_ENVS and the deploy kit"
            );
            cli.envs.insert(name.to_string());
        }
        cli
    })
}

impl Cli {
    fn default_port(&self, flag: &str) -> u16 {
        self.defaults[flag]
            .parse()
            .unwrap_or_else(|e| panic!("{flag}: {e}"))
    }
    fn rest_port(&self) -> u16 {
        self.default_port("--rest-port")
    }
    fn grpc_port(&self) -> u16 {
        self.default_port("--grpc-port")
    }
    fn default_mib(&self, flag: &str) -> u64 {
        self.defaults[flag].parse().unwrap()
    }

    /// Panics unless `args` (after the binary) is a subcommand with flags it accepts.
    fn check_args(&self, whence: &str, args: &[String]) {
        let Some(cmd) = args.first() else { return };
        assert!(
            self.commands.contains(cmd),
            "{whence}: `{cmd}` is not a glurpc subcommand ({:?})",
            self.commands
        );
        if cmd != "serve" {
            return;
        }
        for a in &args[1..] {
            if let Some(flag) = a.strip_prefix("--") {
                let flag = format!("--{}", flag.split('=').next().unwrap());
                assert!(
                    self.flags.contains(&flag),
                    "{whence}: `glurpc serve` has no flag {flag}"
                );
            }
        }
    }

    fn check_envs<'a>(&self, whence: &str, names: impl IntoIterator<Item = &'a String>) {
        let unknown: Vec<_> = names
            .into_iter()
            .filter(|n| !self.envs.contains(*n))
            .collect();
        assert!(
            unknown.is_empty(),
            "{whence}: `glurpc serve` reads no variable named {unknown:?}"
        );
    }
}

/// A parsed Dockerfile: instructions (continuations joined, comments dropped) per stage.
struct Dockerfile {
    /// (FROM line, its instructions as (KEYWORD, rest)).
    stages: Vec<(String, Vec<(String, String)>)>,
}

fn dockerfile() -> Dockerfile {
    let text = read("deploy/Dockerfile");
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(t);
            logical.push(std::mem::take(&mut cur));
        }
    }
    assert!(cur.is_empty(), "a continuation runs off the end");
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for l in logical {
        let (kw, rest) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let (kw, rest) = (kw.to_ascii_uppercase(), rest.trim().to_string());
        if kw == "FROM" {
            stages.push((rest, Vec::new()));
        } else if let Some(st) = stages.last_mut() {
            st.1.push((kw, rest));
        }
    }
    Dockerfile { stages }
}

impl Dockerfile {
    fn final_stage(&self) -> &[(String, String)] {
        &self.stages.last().unwrap().1
    }
    /// The values of `ENV` in the final stage.
    fn env(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (kw, rest) in self.final_stage() {
            if kw == "ENV" {
                for tok in rest.split_whitespace() {
                    let (k, v) = tok.split_once('=').expect("ENV KEY=VALUE");
                    out.insert(k.to_string(), v.trim_matches('"').to_string());
                }
            }
        }
        out
    }
    fn json_array(rest: &str) -> Vec<String> {
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("not an exec-form array: {rest}: {e}"))
    }
}

/// `.dockerignore` as Docker applies it: each line a path pattern from the context root
/// (`*` within a name, `**` across directories, `!` re-includes); a matched directory
/// excludes everything below it; the last matching line wins.
struct DockerIgnore {
    rules: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    fn load() -> DockerIgnore {
        let rules = read(".dockerignore")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (neg, pat) = match l.strip_prefix('!') {
                    Some(p) => (true, p),
                    None => (false, l),
                };
                let parts = pat
                    .trim_matches('/')
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .map(String::from)
                    .collect();
                (neg, parts)
            })
            .collect();
        DockerIgnore { rules }
    }

    /// `*` matches any run of characters within one name.
    fn glob(pat: &str, name: &str) -> bool {
        match pat.split_once('*') {
            None => pat == name,
            Some((pre, post)) => name.strip_prefix(pre).is_some_and(|rest| {
                rest.char_indices()
                    .map(|(i, _)| i)
                    .chain([rest.len()])
                    .any(|i| Self::glob(post, &rest[i..]))
            }),
        }
    }

    /// Whether `pat` matches the first components of `path` (a directory excludes all below).
    fn prefix_match(pat: &[String], path: &[&str]) -> bool {
        match pat.split_first() {
            None => true,
            Some((p, rest)) if p == "**" => {
                (0..=path.len()).any(|i| Self::prefix_match(rest, &path[i..]))
            }
            Some((p, rest)) => match path.split_first() {
                Some((c, tail)) => Self::glob(p, c) && Self::prefix_match(rest, tail),
                None => false,
            },
        }
    }

    fn excluded(&self, rel: &str) -> bool {
        let path: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut out = false;
        for (neg, pat) in &self.rules {
            if Self::prefix_match(pat, &path) {
                out = !neg;
            }
        }
        out
    }
}

/// Paths (relative to the root) that `cargo build --release` of the binary reads: the
/// manifest and lock, the build script and the files it names, every target and
/// workspace member the manifest names, and every file `include_bytes!`/`include_str!`
/// embeds.
fn build_inputs() -> BTreeSet<String> {
    let mut need = BTreeSet::new();
    for f in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        need.insert(f.to_string());
    }
    let manifest = read("Cargo.toml");
    let mut section = String::new();
    let mut target_name: Option<String> = None;
    let mut target_path: Option<String> = None;
    let mut targets = Vec::new();
    let quoted = Regex::new(r#""([^"]+)""#).unwrap();
    let path_dep = Regex::new(r#"path\s*=\s*"([^"]+)""#).unwrap();
    // The file of the target section just read: its `path`, or cargo's default.
    fn flush(
        section: &str,
        name: &mut Option<String>,
        path: &mut Option<String>,
        out: &mut Vec<String>,
    ) {
        let dir = match section {
            "[[bench]]" => "benches",
            "[[test]]" => "tests",
            "[[example]]" => "examples",
            _ => "",
        };
        if let Some(p) = path.take() {
            out.push(p);
        } else if let (Some(n), false) = (name.as_ref(), dir.is_empty()) {
            let single = format!("{dir}/{n}.rs");
            out.push(if root().join(&single).exists() {
                single
            } else {
                format!("{dir}/{n}/main.rs")
            });
        }
        *name = None;
    }
    for line in manifest.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            flush(&section, &mut target_name, &mut target_path, &mut targets);
            section = t.to_string();
            continue;
        }
        let Some((key, value)) = t.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let in_target = matches!(
            section.as_str(),
            "[lib]" | "[[bin]]" | "[[bench]]" | "[[test]]" | "[[example]]"
        );
        if in_target && key == "name" {
            target_name = quoted.captures(value).map(|c| c[1].to_string());
        } else if in_target && key == "path" {
            target_path = quoted.captures(value).map(|c| c[1].to_string());
        } else if section == "[workspace]" && key == "members" {
            for c in quoted.captures_iter(value) {
                if &c[1] != "." {
                    need.insert(c[1].to_string());
                }
            }
        } else if let Some(c) = path_dep.captures(value) {
            // a path dependency
            need.insert(c[1].to_string());
        }
    }
    flush(&section, &mut target_name, &mut target_path, &mut targets);
    assert!(targets.iter().any(|t| t == "src/main.rs"), "{targets:?}");
    need.extend(targets);
    // The files the build script names (the .proto), when they exist.
    for c in quoted.captures_iter(&read("build.rs")) {
        if root().join(&c[1]).is_file() {
            need.insert(c[1].to_string());
        }
    }
    // Embedded files.
    let include = Regex::new(r#"include_(?:bytes|str)!\(\s*"([^"]+)"\s*\)"#).unwrap();
    let mut sources = files_under("src");
    for member in need.clone() {
        if root().join(&member).join("src").is_dir() {
            sources.extend(files_under(&format!("{member}/src")));
        }
    }
    for f in sources.iter().filter(|f| f.ends_with(".rs")) {
        for c in include.captures_iter(&read(f)) {
            // `src/x/y.rs` + `../../model/m` -> `model/m`, without following links.
            let mut rel: Vec<String> = Vec::new();
            let dir = Path::new(f).parent().unwrap();
            for comp in dir.join(&c[1]).components() {
                match comp {
                    std::path::Component::ParentDir => {
                        rel.pop()
                            .unwrap_or_else(|| panic!("{f}: {} is outside the repository", &c[1]));
                    }
                    std::path::Component::Normal(n) => rel.push(n.to_string_lossy().into_owned()),
                    _ => {}
                }
            }
            need.insert(rel.join("/"));
        }
    }
    need
}

#[test]
fn every_yaml_and_json_file_parses() {
    let files = files_under("deploy");
    let mut yaml = 0;
    for f in &files {
        if f.ends_with(".yaml") || f.ends_with(".yml") {
            assert!(!yaml_docs(f).is_empty(), "{f}: no document");
            yaml += 1;
        } else if f.ends_with(".json") {
            serde_json::from_str::<serde_json::Value>(&read(f))
                .unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
    assert!(yaml >= 5, "{files:?}");
}

#[test]
fn dockerfile_stages_user_healthcheck_and_settings() {
    let d = dockerfile();
    let cli = cli();
    assert_eq!(d.stages.len(), 2, "builder and runtime");
    let (builder_from, builder) = &d.stages[0];
    let (runtime_from, runtime) = &d.stages[1];
    assert!(
        builder_from.starts_with("rust:1-bookworm "),
        "{builder_from}"
    );
    assert!(
        builder_from.to_ascii_lowercase().ends_with(" as builder"),
        "{builder_from}"
    );
    assert!(
        runtime_from.starts_with("debian:bookworm-slim"),
        "{runtime_from}"
    );
    let builds: Vec<_> = builder
        .iter()
        .filter(|(k, r)| k == "RUN" && r.contains("cargo build"))
        .collect();
    assert_eq!(builds.len(), 1);
    assert!(builds[0].1.contains("--release") && builds[0].1.contains("--locked"));
    assert!(
        builds[0].1.contains("--mount=type=cache"),
        "the target directory is cached"
    );

    // A non-root USER, set before the command runs, whose name the image creates.
    let users: Vec<_> = runtime.iter().filter(|(k, _)| k == "USER").collect();
    assert_eq!(users.len(), 1);
    let user = users[0].1.split(':').next().unwrap();
    assert!(user != "root" && user != "0", "{user}");
    assert!(
        runtime
            .iter()
            .any(|(k, r)| k == "RUN" && r.contains("useradd") && r.contains(user)),
        "the runtime stage creates {user}"
    );
    let pos = |kw: &str| runtime.iter().position(|(k, _)| k == kw).unwrap();
    assert!(pos("USER") < pos("CMD") && pos("USER") < pos("ENTRYPOINT"));

    // The binary comes from the builder; the health check is a file the image has.
    assert!(runtime.iter().any(|(k, r)| k == "COPY"
        && r.starts_with("--from=builder")
        && r.ends_with("/usr/local/bin/glurpc")));
    let hc: Vec<_> = runtime.iter().filter(|(k, _)| k == "HEALTHCHECK").collect();
    assert_eq!(hc.len(), 1);
    let cmd = &hc[0].1[hc[0].1.find("CMD").expect("HEALTHCHECK ... CMD") + 3..];
    let hc_cmd = Dockerfile::json_array(cmd.trim());
    assert!(
        runtime
            .iter()
            .any(|(k, r)| k == "COPY" && r.ends_with(&hc_cmd[0])),
        "{} is copied into the image",
        hc_cmd[0]
    );

    // The command: the binary, then a subcommand with flags it accepts.
    let entry = Dockerfile::json_array(&runtime[pos("ENTRYPOINT")].1);
    assert_eq!(entry, ["/usr/local/bin/glurpc"]);
    let args = Dockerfile::json_array(&runtime[pos("CMD")].1);
    cli.check_args("Dockerfile CMD", &args);
    assert_eq!(args[0], "serve");

    // Settings: names the binary reads, JSON logs, the cache on a volume, the ports.
    let env = d.env();
    cli.check_envs("Dockerfile ENV", env.keys());
    assert_eq!(env["GLURPC_LOG_JSON"], "1");
    let volumes: Vec<String> = runtime
        .iter()
        .filter(|(k, _)| k == "VOLUME")
        .flat_map(|(_, r)| Dockerfile::json_array(r))
        .collect();
    assert!(volumes.contains(&env["GLURPC_CACHE_DIR"]), "{volumes:?}");
    assert!(
        runtime.iter().any(|(k, r)| k == "RUN"
            && r.contains(&env["GLURPC_CACHE_DIR"])
            && r.contains(&format!("-o {user}"))),
        "the cache directory is created owned by {user}"
    );
    let rest = cli.rest_port().to_string();
    let grpc = cli.grpc_port().to_string();
    assert_eq!(env.get("GLURPC_REST_PORT").unwrap_or(&rest), &rest);
    assert_eq!(env.get("GLURPC_GRPC_PORT").unwrap_or(&grpc), &grpc);
    let exposed: BTreeSet<&str> = runtime
        .iter()
        .filter(|(k, _)| k == "EXPOSE")
        .flat_map(|(_, r)| r.split_whitespace())
        .collect();
    assert_eq!(exposed, BTreeSet::from([rest.as_str(), grpc.as_str()]));
}

#[test]
fn docker_build_context_has_everything_the_build_reads() {
    let d = dockerfile();
    let ignore = DockerIgnore::load();
    // Big or private folders stay out of the context.
    for p in [
        "target/debug/glurpc",
        ".cuda/x",
        "data/x",
        "cache_storage/x",
        "crates/glurpc-gemm/target/x",
        ".git/HEAD",
    ] {
        assert!(ignore.excluded(p), ".dockerignore lets {p} in");
    }
    // Sources the Dockerfile copies from the context.
    let mut copied = Vec::new();
    for (_, instrs) in &d.stages {
        for (kw, rest) in instrs {
            if (kw == "COPY" || kw == "ADD") && !rest.contains("--from=") {
                let toks: Vec<&str> = rest
                    .split_whitespace()
                    .filter(|t| !t.starts_with("--"))
                    .collect();
                for src in &toks[..toks.len() - 1] {
                    let src = src.trim_end_matches('/');
                    assert!(root().join(src).exists(), "COPY {src}: no such path");
                    assert!(
                        !ignore.excluded(src),
                        "COPY {src}: excluded by .dockerignore"
                    );
                    copied.push(src.to_string());
                }
            }
        }
    }
    for need in build_inputs() {
        assert!(root().join(&need).exists(), "{need}");
        assert!(
            copied
                .iter()
                .any(|c| need == *c || need.starts_with(&format!("{c}/"))),
            "the build reads {need}, which the Dockerfile does not copy"
        );
        assert!(
            !ignore.excluded(&need),
            "the build reads {need}, which .dockerignore leaves out"
        );
    }
}

/// Services of the compose file that run glurpc.
fn compose_glurpc_services(compose: &Yaml) -> Vec<(String, &Yaml)> {
    entries(&compose["services"])
        .into_iter()
        .filter(|(_, svc)| {
            s(&svc["image"]).is_some_and(|i| i.starts_with("glurpc"))
                || s(&svc["build"]["dockerfile"]).is_some_and(|d| d.ends_with("deploy/Dockerfile"))
        })
        .collect()
}

/// `environment:` of a compose service (mapping or `KEY=VALUE` list).
fn compose_env(svc: &Yaml) -> BTreeMap<String, String> {
    let env = &svc["environment"];
    let mut out: BTreeMap<String, String> = entries(env)
        .into_iter()
        .map(|(k, v)| (k, s(v).unwrap_or_default()))
        .collect();
    for item in list(env) {
        let item = s(item).unwrap();
        let (k, v) = item.split_once('=').unwrap_or((&item, ""));
        out.insert(k.to_string(), v.to_string());
    }
    out
}

/// A `host:port` from `redis://host:port[/db]`.
fn redis_host_port(url: &str) -> (String, u16) {
    let rest = url
        .strip_prefix("redis://")
        .unwrap_or_else(|| panic!("{url}"));
    let hostport = rest.split('/').next().unwrap();
    let hostport = hostport.rsplit('@').next().unwrap();
    let (h, p) = hostport.split_once(':').unwrap_or((hostport, "6379"));
    (h.to_string(), p.parse().unwrap())
}

#[test]
fn compose_services_settings_and_ports() {
    let cli = cli();
    let docs = yaml_docs("deploy/compose.yaml");
    assert_eq!(docs.len(), 1);
    let c = &docs[0];
    let (rest, grpc) = (cli.rest_port(), cli.grpc_port());

    // Redis, bounded and evicting.
    let redis = &c["services"]["redis"];
    assert!(s(&redis["image"]).unwrap().starts_with("redis:7"));
    let redis_cmd: Vec<String> = list(&redis["command"]).iter().filter_map(s).collect();
    let arg = |name: &str| {
        let i = redis_cmd
            .iter()
            .position(|a| a == name)
            .unwrap_or_else(|| panic!("redis {name}"));
        redis_cmd[i + 1].clone()
    };
    assert!(arg("--maxmemory").ends_with("mb"));
    assert_eq!(arg("--maxmemory-policy"), "volatile-lru");

    // Two glurpc replicas, their settings and command accepted by the binary.
    let services = compose_glurpc_services(c);
    assert_eq!(services.len(), 1, "one scalable glurpc service");
    let (name, svc) = &services[0];
    assert_eq!(s(&svc["deploy"]["replicas"]).as_deref(), Some("2"));
    assert!(
        svc["container_name"].is_badvalue(),
        "container_name would stop scaling"
    );
    assert!(
        svc["ports"].is_badvalue(),
        "published ports would clash between replicas"
    );
    let args: Vec<String> = list(&svc["command"]).iter().filter_map(s).collect();
    cli.check_args("compose glurpc command", &args);
    let env = compose_env(svc);
    cli.check_envs("compose glurpc environment", env.keys());
    assert_eq!(env["GLURPC_LOG_JSON"], "1");
    assert!(env.contains_key("GLURPC_REDIS_TTL_S"));
    let (host, port) = redis_host_port(&env["GLURPC_REDIS_URL"]);
    assert_eq!((host.as_str(), port), ("redis", 6379));
    let expose: BTreeSet<String> = list(&svc["expose"]).iter().filter_map(s).collect();
    assert_eq!(expose, BTreeSet::from([rest.to_string(), grpc.to_string()]));
    let memory = s(&svc["deploy"]["resources"]["limits"]["memory"]).unwrap();
    assert!(mib(&memory) >= min_memory_mib(cli), "{memory}");
    assert!(s(&svc["stop_grace_period"]).is_some());

    // The load balancer: its config is the file beside, on the binary's ports.
    let lb = &c["services"]["lb"];
    let mounts: Vec<String> = list(&lb["volumes"]).iter().filter_map(s).collect();
    let conf = mounts
        .iter()
        .find(|m| m.contains("nginx.conf"))
        .expect("nginx.conf mounted");
    assert!(
        root()
            .join("deploy")
            .join(conf.split(':').next().unwrap())
            .is_file()
    );
    let published: BTreeSet<String> = list(&lb["ports"]).iter().filter_map(s).collect();
    assert_eq!(
        published,
        BTreeSet::from([format!("{rest}:{rest}"), format!("{grpc}:{grpc}")])
    );
    let nginx = read("deploy/nginx.conf");
    for port in [rest, grpc] {
        assert!(
            nginx.contains(&format!("listen {port};")),
            "nginx listens on {port}"
        );
        assert!(
            nginx.contains(&format!("server {name}:{port} resolve;")),
            "nginx upstream {name}:{port}"
        );
    }
    assert!(
        nginx.contains("http2 on;") && nginx.contains("grpc_pass grpc://"),
        "gRPC over h2c"
    );

    // snetd: optional (a profile), talks to the balanced gRPC port with glurpc's service id.
    let snetd = &c["services"]["snetd"];
    assert!(
        !list(&snetd["profiles"]).is_empty(),
        "snetd is under a profile"
    );
    let example = root().join("deploy/snetd.compose.example.json");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let mounts: Vec<String> = list(&snetd["volumes"]).iter().filter_map(s).collect();
    assert!(
        mounts
            .iter()
            .any(|m| m.starts_with("./snetd.compose.json:")),
        "{mounts:?}"
    );
    for key in ["service_endpoint", "heartbeat_endpoint"] {
        assert_eq!(cfg[key], format!("http://lb:{grpc}"), "{key}");
    }
    assert_eq!(
        cfg["service_id"],
        cli.defaults["--snet-service-id"].as_str()
    );
    assert_eq!(
        env["GLURPC_SNET_SERVICE_ID"],
        cli.defaults["--snet-service-id"]
    );
    assert!(cfg["max_message_size_in_mb"].as_u64().unwrap() >= 64);
    let daemon_port = cfg["daemon_endpoint"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    let snetd_ports: Vec<String> = list(&snetd["ports"]).iter().filter_map(s).collect();
    assert!(
        snetd_ports
            .iter()
            .any(|p| p.ends_with(&format!(":{daemon_port}")))
    );
}

/// MiB in a size: `2g`, `512m`, `2Gi`, `512Mi`.
fn mib(size: &str) -> u64 {
    let size = size.trim();
    let digits: String = size.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().unwrap_or_else(|_| panic!("{size}"));
    match size[digits.len()..].to_ascii_lowercase().as_str() {
        "g" | "gi" | "gb" => n * 1024,
        "m" | "mi" | "mb" => n,
        other => panic!("{size}: unit {other}"),
    }
}

/// The least memory a replica is given: room for the parse budget and the caches at
/// their defaults.
fn min_memory_mib(cli: &Cli) -> u64 {
    cli.default_mib("--parse-memory-mb") + cli.default_mib("--max-cache-size")
}

/// Every document of the Kubernetes manifests, with its file.
fn k8s_docs() -> Vec<(String, Yaml)> {
    let kustomization = yaml_docs("deploy/k8s/kustomization.yaml");
    let resources: Vec<String> = list(&kustomization[0]["resources"])
        .iter()
        .filter_map(s)
        .collect();
    let mut all: Vec<String> = files_under("deploy/k8s")
        .into_iter()
        .filter(|f| f.ends_with(".yaml") && !f.ends_with("kustomization.yaml"))
        .collect();
    all.sort();
    let mut listed: Vec<String> = resources
        .iter()
        .map(|r| format!("deploy/k8s/{r}"))
        .collect();
    listed.sort();
    assert_eq!(listed, all, "kustomization.yaml lists every manifest");
    all.iter()
        .flat_map(|f| yaml_docs(f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn labels(y: &Yaml) -> BTreeMap<String, String> {
    entries(y)
        .into_iter()
        .map(|(k, v)| (k, s(v).unwrap()))
        .collect()
}

fn subset(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    !a.is_empty() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

#[test]
fn kubernetes_manifests() {
    let cli = cli();
    let (rest, grpc) = (cli.rest_port(), cli.grpc_port());
    let docs = k8s_docs();
    let kind = |k: &str| -> Vec<&Yaml> {
        docs.iter()
            .map(|(_, d)| d)
            .filter(|d| s(&d["kind"]).as_deref() == Some(k))
            .collect()
    };
    for (f, d) in &docs {
        assert!(
            s(&d["apiVersion"]).is_some() && s(&d["kind"]).is_some(),
            "{f}"
        );
        assert!(s(&d["metadata"]["name"]).is_some(), "{f}");
    }

    // The Deployment.
    let deployments = kind("Deployment");
    assert_eq!(deployments.len(), 1);
    let dep = deployments[0];
    let dep_name = s(&dep["metadata"]["name"]).unwrap();
    let pod_labels = labels(&dep["spec"]["template"]["metadata"]["labels"]);
    assert!(subset(
        &labels(&dep["spec"]["selector"]["matchLabels"]),
        &pod_labels
    ));
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(
        s(&pod["securityContext"]["runAsNonRoot"]).as_deref(),
        Some("true")
    );
    let grace: u64 = s(&pod["terminationGracePeriodSeconds"])
        .unwrap()
        .parse()
        .unwrap();
    let shutdown: f64 = cli.defaults["--shutdown-grace-s"].parse().unwrap();
    assert!(
        grace as f64 > shutdown,
        "terminationGracePeriodSeconds {grace} <= {shutdown}"
    );
    let containers = list(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let ctr = &containers[0];
    let image = s(&ctr["image"]).unwrap();
    assert!(image.starts_with("glurpc"), "{image}");
    let mut args: Vec<String> = list(&ctr["command"]).iter().filter_map(s).collect();
    args.extend(list(&ctr["args"]).iter().filter_map(s));
    cli.check_args("Deployment args", &args);
    let env: BTreeMap<String, String> = list(&ctr["env"])
        .iter()
        .map(|e| (s(&e["name"]).unwrap(), s(&e["value"]).unwrap_or_default()))
        .collect();
    cli.check_envs("Deployment env", env.keys());
    assert_eq!(env["GLURPC_LOG_JSON"], "1");
    assert!(env.contains_key("GLURPC_REDIS_TTL_S"));
    for (var, port) in [("GLURPC_REST_PORT", rest), ("GLURPC_GRPC_PORT", grpc)] {
        assert_eq!(
            env.get(var).map_or(port, |v| v.parse().unwrap()),
            port,
            "{var}"
        );
    }
    let ports: BTreeMap<String, u16> = list(&ctr["ports"])
        .iter()
        .map(|p| {
            (
                s(&p["name"]).unwrap(),
                s(&p["containerPort"]).unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("http".into(), rest), ("grpc".into(), grpc)])
    );

    // Probes on grpc.health.v1, for names the server reports SERVING.
    let proto = read("proto/glurpc.proto");
    let package = Regex::new(r"(?m)^package (\w+);")
        .unwrap()
        .captures(&proto)
        .unwrap()[1]
        .to_string();
    let service = Regex::new(r"(?m)^service (\w+)")
        .unwrap()
        .captures(&proto)
        .unwrap()[1]
        .to_string();
    let serving = [
        String::new(),
        format!("{package}.{service}"),
        cli.defaults["--snet-service-id"].clone(),
    ];
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let g = &ctr[probe]["grpc"];
        if probe == "startupProbe" && ctr[probe].is_badvalue() {
            continue;
        }
        assert!(!g.is_badvalue(), "{probe} is a gRPC probe");
        assert_eq!(s(&g["port"]).unwrap(), grpc.to_string(), "{probe} port");
        let name = s(&g["service"]).unwrap_or_default();
        assert!(
            serving.contains(&name),
            "{probe}: service {name:?} is not one of {serving:?}"
        );
    }
    assert_eq!(
        s(&ctr["readinessProbe"]["grpc"]["service"]).unwrap(),
        format!("{package}.{service}")
    );

    // Resources: requests for the HPA, a memory limit with room for the defaults.
    let res = &ctr["resources"];
    assert!(s(&res["requests"]["cpu"]).is_some());
    let req = mib(&s(&res["requests"]["memory"]).unwrap());
    let lim = mib(&s(&res["limits"]["memory"]).unwrap());
    assert!(
        req <= lim && lim >= min_memory_mib(cli),
        "requests {req} MiB, limits {lim} MiB"
    );
    // The cache directory is on a writable volume (the root filesystem is read-only).
    let cache = &env["GLURPC_CACHE_DIR"];
    assert!(
        list(&ctr["volumeMounts"])
            .iter()
            .any(|m| cache.starts_with(&s(&m["mountPath"]).unwrap())),
        "{cache} is on a volume"
    );

    // Services: select the pods, on the container's named ports; gRPC marked h2c.
    let services = kind("Service");
    let glurpc_services: Vec<&&Yaml> = services
        .iter()
        .filter(|svc| subset(&labels(&svc["spec"]["selector"]), &pod_labels))
        .collect();
    assert!(!glurpc_services.is_empty());
    let mut seen = BTreeSet::new();
    for svc in glurpc_services {
        for p in list(&svc["spec"]["ports"]) {
            let target = s(&p["targetPort"]).unwrap();
            let port: u16 = s(&p["port"]).unwrap().parse().unwrap();
            let container = ports.get(&target).copied().or_else(|| target.parse().ok());
            assert_eq!(container, Some(port), "Service port {port} -> {target}");
            if port == grpc {
                assert_eq!(s(&p["appProtocol"]).as_deref(), Some("kubernetes.io/h2c"));
            }
            seen.insert(port);
        }
    }
    assert_eq!(seen, BTreeSet::from([rest, grpc]));

    // The HPA scales the Deployment on CPU.
    let hpas = kind("HorizontalPodAutoscaler");
    assert_eq!(hpas.len(), 1);
    let hpa = hpas[0];
    assert_eq!(s(&hpa["apiVersion"]).as_deref(), Some("autoscaling/v2"));
    assert_eq!(
        s(&hpa["spec"]["scaleTargetRef"]["kind"]).as_deref(),
        Some("Deployment")
    );
    assert_eq!(s(&hpa["spec"]["scaleTargetRef"]["name"]), Some(dep_name));
    assert!(
        list(&hpa["spec"]["metrics"])
            .iter()
            .any(|m| s(&m["resource"]["name"]).as_deref() == Some("cpu"))
    );

    // Redis: a StatefulSet behind the Service GLURPC_REDIS_URL names, bounded and evicting.
    let (host, port) = redis_host_port(&env["GLURPC_REDIS_URL"]);
    let redis_svc = services
        .iter()
        .find(|svc| s(&svc["metadata"]["name"]).as_deref() == Some(host.as_str()))
        .unwrap_or_else(|| panic!("no Service {host}"));
    assert!(
        list(&redis_svc["spec"]["ports"])
            .iter()
            .any(|p| s(&p["port"]).as_deref() == Some(&port.to_string()))
    );
    let sts = kind("StatefulSet");
    assert_eq!(sts.len(), 1);
    let redis = sts[0];
    assert!(subset(
        &labels(&redis_svc["spec"]["selector"]),
        &labels(&redis["spec"]["template"]["metadata"]["labels"])
    ));
    let rctr = &list(&redis["spec"]["template"]["spec"]["containers"])[0];
    assert!(s(&rctr["image"]).unwrap().starts_with("redis:7"));
    let rargs: Vec<String> = list(&rctr["args"]).iter().filter_map(s).collect();
    let i = rargs
        .iter()
        .position(|a| a == "--maxmemory-policy")
        .unwrap();
    assert_eq!(rargs[i + 1], "volatile-lru");
    let i = rargs.iter().position(|a| a == "--maxmemory").unwrap();
    let maxmemory = mib(&rargs[i + 1]);
    let redis_limit = mib(&s(&rctr["resources"]["limits"]["memory"]).unwrap());
    assert!(
        maxmemory < redis_limit,
        "maxmemory {maxmemory} MiB within the limit {redis_limit} MiB"
    );
}

#[test]
fn every_glurpc_name_in_deploy_is_accepted_by_the_binary() {
    let cli = cli();
    let var = Regex::new(r"\bGLURPC_[A-Z0-9_]*[A-Z0-9]\b").unwrap();
    let mut seen = BTreeSet::new();
    for f in files_under("deploy") {
        let Ok(text) = std::fs::read_to_string(root().join(&f)) else {
            continue;
        };
        let names: BTreeSet<String> = var
            .find_iter(&text)
            .map(|m| m.as_str().to_string())
            .collect();
        cli.check_envs(&f, &names);
        seen.extend(names);
        // Command lines in prose and comments: `glurpc serve --flag ...`.
        for line in text.lines() {
            if let Some(i) = line.find("glurpc serve") {
                let tail = &line[i + "glurpc ".len()..];
                let tail = tail.split(['`', '#', ')', '"']).next().unwrap();
                let args: Vec<String> = tail.split_whitespace().map(String::from).collect();
                cli.check_args(&format!("{f}: {line}"), &args);
            }
        }
    }
    assert!(
        seen.contains("GLURPC_LOG_JSON") && seen.contains("GLURPC_REDIS_URL"),
        "{seen:?}"
    );
    // The health check's fallbacks are the binary's defaults.
    let hc = read("deploy/healthcheck.sh");
    assert!(hc.contains(&format!("${{GLURPC_REST_PORT:-{}}}", cli.rest_port())));
    assert!(hc.contains(&format!("${{GLURPC_GRPC_PORT:-{}}}", cli.grpc_port())));
}

/// A `glurpc serve` process on free ports, killed when dropped.
struct Server {
    child: Child,
    rest: u16,
    grpc: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_glurpc"))
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .args(["--enable-cache-persistence", "false"])
        .env_remove("ENABLE_API_KEYS")
        .env_remove("GLURPC_LOG_JSON")
        .env("GLURPC_CACHE_DIR", dir.path().join("cache"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("glurpc ready:"))
        .expect("the server did not start");
    std::thread::spawn(move || for _ in lines {});
    let port = |key: &str| -> u16 {
        let w = ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap();
        w.rsplit(':').next().unwrap().parse().unwrap()
    };
    Server {
        rest: port("rest="),
        grpc: port("grpc="),
        child,
        _dir: dir,
    }
}

/// Runs deploy/healthcheck.sh with only `env` set; true when it exits 0.
fn healthcheck(env: &[(&str, String)]) -> bool {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("deploy/healthcheck.sh")).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.status().unwrap().success()
}

/// A port with nothing listening (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn healthcheck_script_against_a_real_server() {
    let server = serve();
    let rest = ("GLURPC_REST_PORT", server.rest.to_string());
    let grpc = ("GLURPC_GRPC_PORT", server.grpc.to_string());
    assert!(
        healthcheck(std::slice::from_ref(&rest)),
        "GET /health on the REST port"
    );
    assert!(healthcheck(&[
        rest.clone(),
        ("GLURPC_HOST", "0.0.0.0".to_string())
    ]));
    assert!(
        !healthcheck(&[("GLURPC_REST_PORT", closed_port().to_string())]),
        "closed port"
    );
    // The gRPC port does not answer HTTP/1.0 with 200.
    assert!(!healthcheck(&[(
        "GLURPC_REST_PORT",
        server.grpc.to_string()
    )]));
    // gRPC only: the gRPC port accepts connections.
    let grpc_only = ("GLURPC_GRPC_ONLY", "Yes".to_string());
    assert!(healthcheck(&[grpc_only.clone(), grpc]));
    assert!(!healthcheck(&[
        grpc_only,
        ("GLURPC_GRPC_PORT", closed_port().to_string())
    ]));
}

#[test]
fn healthcheck_script_fails_on_an_error_status() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = [0u8; 1024];
        let n = conn.read(&mut head).unwrap();
        let head = String::from_utf8_lossy(&head[..n]).into_owned();
        conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        head
    });
    assert!(!healthcheck(&[("GLURPC_REST_PORT", port.to_string())]));
    let head = answer.join().unwrap();
    assert!(head.starts_with("GET /health HTTP/1.0\r\n"), "{head}");
}

/// The value of `CONFIG GET name` from the Redis on `port` (RESP: `*2`, the name, the value).
fn redis_config(port: u16, name: &str) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    conn.write_all(format!("CONFIG GET {name}\r\n").as_bytes())
        .unwrap();
    let mut lines = BufReader::new(conn).lines().map(Result::unwrap);
    assert_eq!(lines.next().unwrap(), "*2", "CONFIG GET {name}");
    let fields: Vec<String> = lines.take(4).collect();
    assert_eq!(fields[1], name);
    fields[3].clone()
}

/// Starts Debian's `redis-server` (the CI installs it; `GLURPC_REDIS_SERVER` names another)
/// with the deploy kit's arguments on a free port, and reads its configuration back.
fn redis_with(args: &[String]) -> BTreeMap<&'static str, String> {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let bin = std::env::var("GLURPC_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let mut child = Command::new(&bin)
        .args(args)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin} ({e}): install Debian's redis-server"));
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("redis-server {args:?} exited at start: {status}");
        }
        assert!(
            started.elapsed().as_secs() < 10,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = ["maxmemory", "maxmemory-policy", "appendonly", "save"]
        .into_iter()
        .map(|k| (k, redis_config(port, k)))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn redis_accepts_the_deploy_arguments() {
    // compose: the whole command line; Kubernetes: the image's entrypoint puts
    // `redis-server` before arguments that start with `-`.
    let compose = &yaml_docs("deploy/compose.yaml")[0];
    let mut cmd: Vec<String> = list(&compose["services"]["redis"]["command"])
        .iter()
        .filter_map(s)
        .collect();
    assert_eq!(cmd.remove(0), "redis-server");
    let c = redis_with(&cmd);
    assert_eq!(c["maxmemory-policy"], "volatile-lru");
    assert_eq!(c["maxmemory"], (512u64 << 20).to_string());
    assert_eq!((c["appendonly"].as_str(), c["save"].as_str()), ("no", ""));

    let sts = yaml_docs("deploy/k8s/redis.yaml")
        .into_iter()
        .find(|d| s(&d["kind"]).as_deref() == Some("StatefulSet"))
        .unwrap();
    let args: Vec<String> = list(&list(&sts["spec"]["template"]["spec"]["containers"])[0]["args"])
        .iter()
        .filter_map(s)
        .collect();
    assert!(args[0].starts_with('-'), "{args:?}");
    let k = redis_with(&args);
    assert_eq!(k["maxmemory-policy"], "volatile-lru");
    assert_eq!(k["appendonly"], "yes");
    assert_eq!(k["maxmemory"], (512u64 << 20).to_string());
}
