//! nginx in front of a test's servers, configured by the repository's own
//! `deploy/nginx/railgun.conf` (its `upstream` lines replaced by the test's servers, its
//! `listen` by a free loopback port), so the deployment kit is what the tests balance with.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{skip, utf8, within};

/// A running nginx (stopped on drop).
pub struct Balancer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

/// `deploy/nginx/railgun.conf` balancing `servers`, listening on `listen`.
pub fn config_for(servers: &[SocketAddr], listen: SocketAddr) -> String {
    let conf = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/railgun.conf"),
    )
    .expect("deploy/nginx/railgun.conf");
    let mut out = String::new();
    let mut upstream_done = false;
    for line in conf.lines() {
        let t = line.trim_start();
        if t.starts_with("server ") && t.contains(":3001") {
            if !upstream_done {
                for s in servers {
                    out.push_str(&format!("    server {s} max_fails=3 fail_timeout=10s;\n"));
                }
                upstream_done = true;
            }
            continue;
        }
        if t == "listen 80;" {
            out.push_str(&format!("    listen {listen};\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        upstream_done,
        "no upstream servers in deploy/nginx/railgun.conf"
    );
    out
}

impl Balancer {
    /// nginx balancing `servers` with the deployment kit's configuration, its files in
    /// `dir`; `None` (SKIP, a failure under `RAILGUN_REQUIRE_ALL=1`) when nginx is missing.
    pub async fn start(dir: &Path, servers: &[SocketAddr]) -> Option<Self> {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(nginx) = nginx else {
            skip("nginx is not installed (apt-get install nginx-light): the balancer tests");
            return None;
        };
        let listen = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        std::fs::create_dir_all(dir.join("logs")).expect("logs");
        std::fs::write(dir.join("railgun.conf"), config_for(servers, listen)).expect("conf");
        let temp = dir.join("temp");
        std::fs::create_dir_all(&temp).expect("temp");
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  \
             fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  \
             include {dir}/railgun.conf;\n}}\n",
            dir = utf8(dir),
            t = utf8(&temp),
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).expect("nginx.conf");
        let test = Command::new(nginx)
            .args(["-t", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("nginx -t");
        assert!(
            test.status.success(),
            "nginx refuses deploy/nginx/railgun.conf: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let me = Self {
            url: format!("http://{listen}"),
            child,
        };
        within("nginx listening", async {
            while tokio::net::TcpStream::connect(listen).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        Some(me)
    }
}

impl Drop for Balancer {
    /// SIGTERM, so the master stops its workers too (a SIGKILLed master leaves them
    /// running); SIGKILL only when it did not exit within 10 s.
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
