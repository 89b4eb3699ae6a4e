//! A raw, signed HTTP client for the simulator tests: each request is signed with the
//! crate's `sign::Signer` exactly as the SDK does, and can be bent (another date,
//! another key, extra headers) to drive each refusal path.
#![allow(dead_code)] // each test file uses a different part of it

use ecs_power_operator::ecs::sign::{self, RequestParts, Signer};
use ecs_power_operator::sim::{DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, RunningSim, SimConfig};
use secrecy::SecretString;
use serde_json::Value;

pub async fn start(config: SimConfig) -> RunningSim {
    ecs_power_operator::sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

pub fn config(servers: usize) -> SimConfig {
    SimConfig {
        servers,
        ..SimConfig::default()
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub request_id: Option<String>,
}

impl Reply {
    /// The code of an ECS body (`error.code`) or a gateway body (`error_code`).
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .or_else(|| self.body["error_code"].as_str())
            .unwrap_or_else(|| panic!("no error code in {}", self.body))
    }
}

/// One request before signing; fields are public so a test can bend any of them.
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub date: jiff::Timestamp,
    pub headers: Vec<(String, String)>,
    pub signer: Signer,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    pub project: String,
}

impl Client {
    pub fn new(sim: &RunningSim) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            host: sim.addr().to_string(),
            project: ecs_power_operator::sim::DEFAULT_PROJECT_ID.to_owned(),
        }
    }

    pub fn request(&self, method: &'static str, rest: &str) -> Request {
        Request {
            method,
            path: format!("/v1/{}/{rest}", self.project),
            query: Vec::new(),
            body: Vec::new(),
            date: jiff::Timestamp::now(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Host".into(), self.host.clone()),
                ("X-Project-Id".into(), self.project.clone()),
            ],
            signer: Signer::new(DEFAULT_ACCESS_KEY, SecretString::from(DEFAULT_SECRET_KEY)),
        }
    }

    pub async fn get(&self, rest: &str, query: &[(&str, &str)]) -> Reply {
        let mut request = self.request("GET", rest);
        request.query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.send(request).await
    }

    pub async fn post(&self, rest: &str, body: &Value) -> Reply {
        let mut request = self.request("POST", rest);
        request.body = serde_json::to_vec(body).unwrap();
        self.send(request).await
    }

    /// `os-stop` (SOFT) of `ids`.
    pub async fn stop(&self, ids: &[String]) -> Reply {
        let servers: Vec<Value> = ids.iter().map(|id| serde_json::json!({"id": id})).collect();
        self.post(
            "cloudservers/action",
            &serde_json::json!({"os-stop": {"type": "SOFT", "servers": servers}}),
        )
        .await
    }

    /// Signs `request` into a ready HTTP request; the load test replays it as is
    /// (a signature stays valid for the 15 minutes of allowed clock skew).
    pub fn prepare(&self, mut request: Request) -> reqwest::Request {
        request.headers.push((
            "X-Sdk-Date".into(),
            request.date.strftime(sign::DATE_FORMAT).to_string(),
        ));
        let authorization = request
            .signer
            .authorization(&RequestParts {
                method: request.method,
                path: &request.path,
                query: &request.query,
                headers: &request.headers,
                body: &request.body,
            })
            .unwrap();
        let query = sign::canonical_query(&request.query);
        let url = if query.is_empty() {
            format!("{}{}", self.base, request.path)
        } else {
            format!("{}{}?{query}", self.base, request.path)
        };
        let mut builder = self
            .http
            .request(request.method.parse().unwrap(), url)
            .header("Authorization", authorization)
            .body(request.body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder.build().unwrap()
    }

    pub async fn execute(&self, request: reqwest::Request) -> reqwest::Response {
        self.http
            .execute(request)
            .await
            .expect("request reaches the simulator")
    }

    /// Sends `request` signed on a fresh TCP connection, as raw HTTP/1.1, and reads
    /// until the simulator closes it: what arrived, or the error that ended it.
    pub async fn send_raw(&self, request: Request) -> std::io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = self.prepare(request);
        let url = request.url();
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default();
        let mut head = format!("{} {target} HTTP/1.1\r\n", request.method());
        for (name, value) in request.headers() {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut stream = tokio::net::TcpStream::connect(&self.host).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await?;
        Ok(received)
    }

    pub async fn send(&self, request: Request) -> Reply {
        let response = self.execute(self.prepare(request)).await;
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            body,
            request_id,
        }
    }

    /// Polls a job until it is terminal (at most `limit`).
    pub async fn wait_job(&self, job_id: &str, limit: std::time::Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let reply = self.get(&format!("jobs/{job_id}"), &[]).await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            let status = reply.body["status"].as_str().unwrap().to_owned();
            if status == "SUCCESS" || status == "FAIL" {
                return reply.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} still {status}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
