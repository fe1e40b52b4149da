//! A real `redis-server` for tests: started on a free loopback port with no
//! persistence, killed and reaped on Drop (PID 1 here does not reap).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it (the port stays reserved for [`RedisServer::restart`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing is saved) and waits
    /// until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes it (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {pid}");
    }

    /// True when it answers PING.
    pub fn ping(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A redis-server child started with `args`, waited for (PING), killed and
/// reaped on Drop.
pub struct RedisProcess {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    /// Its files, removed on Drop.
    dir: Option<std::path::PathBuf>,
}

impl RedisProcess {
    /// Starts `redis-server ARGS…` listening on `port`.
    pub fn start(port: u16, args: &[String], dir: std::path::PathBuf) -> RedisProcess {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let process = RedisProcess {
            port,
            child,
            dir: Some(dir),
        };
        let server = RedisServer { port, child: None };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh temporary directory for one server's files.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "smtpgate-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A replica of `master`, once its replication link is up.
pub fn start_replica(master: &RedisServer) -> RedisProcess {
    let port = free_port();
    let dir = temp_dir("replica");
    let args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
        "--replicaof",
        "127.0.0.1",
        &master.port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let replica = RedisProcess::start(port, &args, dir);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "info", "replication"])
            .output()
            .expect("redis-cli");
        if String::from_utf8_lossy(&info.stdout).contains("master_link_status:up") {
            return replica;
        }
        assert!(Instant::now() < deadline, "replica did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Sentinel monitoring `master` as service `mymaster` (quorum 1; a
/// master silent for 500 ms is failed over).
pub fn start_sentinel(master: &RedisServer) -> RedisProcess {
    let port = free_port();
    let dir = temp_dir("sentinel");
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds mymaster 500\nsentinel failover-timeout mymaster 5000\n",
            dir.display(),
            master.port
        ),
    )
    .expect("sentinel.conf");
    let sentinel = RedisProcess::start(
        port,
        &[conf.display().to_string(), "--sentinel".to_string()],
        dir,
    );
    // Returned once it names the master (answering PING comes first).
    let deadline = Instant::now() + Duration::from_secs(10);
    while sentinel_master_port(port) != Some(master.port) {
        assert!(Instant::now() < deadline, "sentinel does not know mymaster");
        std::thread::sleep(Duration::from_millis(50));
    }
    sentinel
}

/// `count` Sentinels monitoring `master` as service `mymaster`, agreeing
/// with `quorum`, failing over a master silent for `down_after_ms`.
/// Returned once every one knows the others and the master's replicas
/// (`replicas` of them), so a failover can start at once.
pub fn start_sentinels(
    master: &RedisServer,
    count: usize,
    quorum: usize,
    down_after_ms: u64,
    replicas: usize,
) -> Vec<RedisProcess> {
    let sentinels: Vec<RedisProcess> = (0..count)
        .map(|_| {
            let port = free_port();
            let dir = temp_dir("sentinel");
            let conf = dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor mymaster 127.0.0.1 {} {quorum}\n\
                     sentinel down-after-milliseconds mymaster {down_after_ms}\n\
                     sentinel failover-timeout mymaster 3000\n\
                     sentinel parallel-syncs mymaster 1\n",
                    dir.display(),
                    master.port
                ),
            )
            .expect("sentinel.conf");
            RedisProcess::start(
                port,
                &[conf.display().to_string(), "--sentinel".to_string()],
                dir,
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for s in &sentinels {
        loop {
            let fields = sentinel_master_fields(s.port);
            let others = fields.get("num-other-sentinels").map(String::as_str);
            let slaves = fields.get("num-slaves").map(String::as_str);
            if others == Some(&(count - 1).to_string()) && slaves == Some(&replicas.to_string()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel {} does not see the others/replicas: {fields:?}",
                s.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    sentinels
}

/// `SENTINEL MASTER mymaster` as name → value.
pub fn sentinel_master_fields(port: u16) -> std::collections::HashMap<String, String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "sentinel", "master", "mymaster"])
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks(2)
        .filter(|p| p.len() == 2)
        .map(|p| (p[0].to_string(), p[1].to_string()))
        .collect()
}

/// The master's port as the Sentinel on `port` names it now.
pub fn sentinel_master_port(port: u16) -> Option<u16> {
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "sentinel",
            "get-master-addr-by-name",
            "mymaster",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// A three-primary Redis Cluster (no replicas), slots assigned.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisProcess>,
}

impl RedisCluster {
    /// Starts three nodes and joins them with `redis-cli --cluster create`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisProcess> = (0..3)
            .map(|_| {
                let port = free_port();
                let bus = free_port();
                let dir = temp_dir("cluster");
                let args: Vec<String> = [
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    &dir.display().to_string(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-config-file",
                    &dir.join("nodes.conf").display().to_string(),
                    "--cluster-node-timeout",
                    "5000",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                RedisProcess::start(port, &args, dir)
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed (it comes with redis-server)");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &n.port.to_string(), "cluster", "info"])
                    .output()
                    .expect("redis-cli");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        RedisCluster { nodes }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
