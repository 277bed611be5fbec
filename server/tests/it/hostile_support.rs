//! Helpers of the hostile suites: a real `railgun serve` child process (its log kept, stopped
//! by SIGTERM or SIGKILL, every wait with a deadline) and raw HTTP/1.1 over TCP, for the
//! requests no HTTP library sends as written (backslashes, `..`, half a request head).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `railgun serve` child on a free loopback port.
pub struct ServeChild {
    child: Option<Child>,
    pid: Pid,
    /// The bound address (read from the child's "listening on" line).
    pub addr: SocketAddr,
    log: Arc<(Mutex<String>, Condvar)>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

impl ServeChild {
    /// Starts `railgun serve --root ROOT --data-dir DATA --addr 127.0.0.1:0 EXTRA…` with no
    /// token or database from the test's environment, and waits (60 s at most) for it to
    /// listen.
    pub fn start(root: &Path, data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(root, data_dir, extra, &[])
    }

    /// [`Self::start`] with extra environment variables.
    pub fn start_with_env(
        root: &Path,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_railgun"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(root)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("RAILGUN_DATABASE_URL")
            .env_remove("RAILGUN_READ_TOKEN")
            .env_remove("RAILGUN_ADMIN_TOKEN")
            .env_remove("RAILGUN_ROLLOUT_KEY_FILE")
            .env_remove("RAILGUN_ALERT_WEBHOOK")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn railgun serve");
        let pid = Pid::from_child(&child);
        let log = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.0.lock().expect("log").push_str(&line);
                sink.1.notify_all();
                line.clear();
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let mut me = Self {
            child: Some(child),
            pid,
            addr: "127.0.0.1:1".parse().expect("addr"),
            log,
            log_reader: Some(log_reader),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("railgun serve did not listen within 60 s: {}", me.log()));
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no listening line ({line:?}): {}", me.log()));
        me.addr = url
            .trim_start_matches("http://")
            .parse()
            .expect("listening address");
        me
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: Signal) {
        kill_process(self.pid, sig).expect("signal the child");
    }

    /// Waits for the child to exit, `within` at most; `None` (the child then killed) when
    /// it did not.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            (child, status)
        });
        let exited = rx.recv_timeout(within).is_ok();
        if !exited {
            let _ = kill_process(self.pid, Signal::KILL);
        }
        let (_, status) = waiter.join().expect("waiter");
        if let Some(r) = self.log_reader.take() {
            let _ = r.join();
        }
        exited.then(|| status.expect("wait"))
    }

    /// SIGTERM, then the exit (30 s at most past `grace`); panics when it does not exit.
    pub fn terminate(&mut self, grace: Duration) -> ExitStatus {
        self.signal(Signal::TERM);
        self.wait_exit(grace + Duration::from_secs(30))
            .unwrap_or_else(|| panic!("railgun serve ignored SIGTERM: {}", self.log()))
    }

    /// Everything the child logged so far (complete once it exited).
    pub fn log(&self) -> String {
        self.log.0.lock().expect("log").clone()
    }

    /// Waits (`within` at most) until the log holds `needle`; `false` when it did not.
    pub fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let (log, grew) = &*self.log;
        let guard = log.lock().expect("log");
        let (guard, _) = grew
            .wait_timeout_while(guard, within, |l| !l.contains(needle))
            .expect("log");
        guard.contains(needle)
    }

    /// The log lines at ERROR level.
    pub fn error_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("ERROR"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The head (status line and header lines), lower-cased.
    pub head: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }
}

/// Sends `GET TARGET` as written (`Connection: close`) and reads the whole answer
/// (10 s at most).
pub async fn raw_get(addr: SocketAddr, method: &str, target: &[u8]) -> RawResponse {
    let mut req = Vec::new();
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    raw_request(addr, &req).await
}

/// Sends `request` as is and reads until the server closes (10 s at most).
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let work = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        buf
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no complete answer within 10 s to {:?}",
                String::from_utf8_lossy(&request[..request.len().min(200)])
            )
        });
    parse_response(&buf)
}

/// Splits a raw HTTP/1.1 response (`Content-Length` or close-delimited body).
pub fn parse_response(buf: &[u8]) -> RawResponse {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    RawResponse {
        status,
        head,
        body: buf[end + 4..].to_vec(),
    }
}

/// Reads what the server sends on `s` until it closes the connection, `within` at most;
/// the bytes read, or `None` when it was still open at the deadline.
pub async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<usize> {
    let drain = async {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(within, drain).await.ok()
}

/// Events named `name` the server counts (`GET /analytics/features`, summed over its days).
pub async fn events_named(base: &str, read_token: &str, name: &str) -> u64 {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/analytics/features?name={name}"))
        .bearer_auth(read_token)
        .send()
        .await
        .expect("features")
        .json()
        .await
        .expect("json");
    v["days"]
        .as_array()
        .unwrap_or_else(|| panic!("no days in {v}"))
        .iter()
        .map(|d| d["events"].as_u64().expect("events"))
        .sum()
}
